"""Text generators behind one interface, one module per backend, looked up by name in `GENERATORS`.

A generator answers chat conversations (`generate`) and, where the backend can, gives the log-probabilities of
single-token choices such as "A"/"B" for AI feedback (`choice_logprobs`) and of whole answers
(`completion_logprobs`), None when the backend cannot.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Literal, Union

from pydantic import Field, model_validator

from shipit.config import StrictModel

Message = dict[str, str]
Conversation = Union[str, list[Message]]
"""A prompt: a plain user message, or a list of chat messages."""

# name -> "module:Class"; each class takes GeneratorSettings and implements the Generator methods below.
GENERATORS: dict[str, str] = {
    "hf": "shipit.data.generators.hf:HFGenerator",
    "vllm": "shipit.data.generators.vllm:VLLMGenerator",
    "openai": "shipit.data.generators.openai:OpenAIGenerator",
}


class GeneratorSettings(StrictModel):
    """Which model generates, and through which backend.

    `hf` loads `model` (a Hugging Face directory) in this process; `vllm` starts vLLM's OpenAI server on `model`
    from the serving environment and talks to it over HTTP; `openai` uses any OpenAI-compatible endpoint at
    `base_url` with the key from the environment variable `api_key_env`, asking for `model_name`.
    """

    backend: Literal["hf", "vllm", "openai"] = "hf"
    model: Path | None = None
    """Model directory (hf, vllm). In `shipit iterate`, empty means the model being improved."""
    base_url: str | None = None
    """Endpoint of the `openai` backend, e.g. http://127.0.0.1:8000/v1."""
    model_name: str | None = None
    """Model name sent to the endpoint (openai); defaults to the directory name for vllm."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the endpoint's key ('unused' when not set)."""
    max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(16, ge=1)
    """Prompts per generate call (hf) or concurrent requests (openai, vllm)."""
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0)
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """dtype the `hf` backend computes in: 'auto' is bfloat16 on a CUDA GPU or CPU with native bf16, else float32
    ($SHIPIT_INFERENCE_DTYPE sets it when this is 'auto'). The `vllm` backend passes it as vLLM's --dtype ('auto':
    vLLM's choice, bfloat16 on CPU)."""
    vllm_python: Path | None = None
    """Python of the serving environment (vllm); default $SHIPIT_VLLM_PYTHON or .venv-serve."""

    @model_validator(mode="after")
    def _backend_needs(self):
        if self.backend == "openai" and not (self.base_url and self.model_name):
            raise ValueError("backend 'openai' needs base_url and model_name")
        return self


class Generator:
    """The interface every backend implements; use as a context manager so servers and models are released."""

    name = "generator"
    can_prefill = False
    """True when a prompt ending in an assistant message is continued (the message begins the answer) rather than
    answered anew; the answer returned is then only the continuation."""

    def generate(self, prompts: list[Conversation], *, temperature: float = 0.0, top_p: float = 1.0,
                 max_new_tokens: int | None = None, seed: int = 0) -> list[str]:
        """One answer per prompt (greedy when temperature is 0)."""
        raise NotImplementedError

    def choice_logprobs(self, prompts: list[Conversation], choices: tuple[str, ...] = ("A", "B")
                        ) -> list[dict[str, float]] | None:
        """Log-probabilities of each choice as the answer's first token, per prompt; None when unavailable."""
        return None

    def completion_logprobs(self, prompts: list[Conversation], completions: list[str]
                            ) -> list[tuple[float, int]] | None:
        """(summed log-probability, tokens) of each completion as the answer to its prompt; None when unavailable."""
        return None

    def describe(self) -> dict:
        """What generated (for provenance)."""
        return {"backend": self.name}

    def close(self) -> None:
        """Release the model or stop the server."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def as_messages(prompt: Conversation) -> list[Message]:
    """A prompt as chat messages."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def ends_with_prefill(messages: list[Message]) -> bool:
    """Whether the conversation ends in an assistant message that the answer continues."""
    return bool(messages) and messages[-1]["role"] == "assistant"


def normalize_choice(token: str) -> str:
    """A choice token without surrounding spaces and brackets: ' (A' -> 'A'."""
    return token.strip().strip("()[].:").strip()


def make_generator(settings: GeneratorSettings, model: Path | None = None) -> Generator:
    """Build the generator `settings` name; `model` fills in an empty `settings.model`."""
    if model is not None and settings.model is None:
        settings = settings.model_copy(update={"model": Path(model)})
    module, cls = GENERATORS[settings.backend].split(":")
    return getattr(importlib.import_module(module), cls)(settings)
