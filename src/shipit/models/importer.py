"""Import a real checkpoint (a GGUF file, or a Hugging Face directory) as a verified safetensors model directory.

The output is what every stage expects: config.json, model.safetensors, the tokenizer with its chat template,
generation_config.json, and a manifest saying where it came from, what was converted, and how far the output's
logits are from the source's on fixed prompts (the import fails when that is above a tolerance).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import Field

from shipit.config import StrictModel
from shipit.errors import UserError

Dtype = Literal["float32", "bfloat16", "float16"]
# Max |logit difference| allowed by default, per output dtype. float32 keeps the dequantized weights exactly (the
# measured difference on SmolLM2-135M is 0); a 16-bit output rounds every weight and computes in 16 bits (measured
# on SmolLM2-135M: bfloat16 1.56, float16 0.21), so its bound only catches a broken conversion.
DEFAULT_TOLERANCE = {"float32": 1e-3, "float16": 0.5, "bfloat16": 3.0}
CHECK_QUESTION = "What is the capital of France?"
CHECK_TEXTS = ("The quick brown fox jumps over the lazy dog. In 1969, the first humans landed on the",
               "def fibonacci(n):\n    if n < 2:\n        return n\n    return")
SPECIAL_KEYS = {"bos_token": "tokenizer.ggml.bos_token_id", "eos_token": "tokenizer.ggml.eos_token_id",
                "unk_token": "tokenizer.ggml.unknown_token_id"}


class ImportSettings(StrictModel):
    """What `shipit base import` was asked to do (recorded in the manifest)."""

    source: Path
    dtype: Dtype = "float32"
    """Weights dtype of the output. GGUF tensors are dequantized to float32, which keeps them exactly."""
    tolerance: float | None = Field(None, gt=0)
    """Largest max |logit difference| between output and source on the check prompts; default per dtype."""


def file_sha256(path: Path) -> str:
    """sha256 of one file's bytes (what `sha256sum` prints)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_kind(source: Path) -> tuple[str, Path]:
    """('gguf', file) or ('hf', directory) for an import source; a one-line error for anything else."""
    source = Path(source).expanduser()
    if source.is_file() and source.suffix == ".gguf":
        return "gguf", source
    if source.is_dir() and (source / "config.json").is_file():
        return "hf", source
    if source.is_dir():
        ggufs = sorted(source.glob("*.gguf"))
        if len(ggufs) == 1:
            return "gguf", ggufs[0]
        if ggufs:
            raise UserError(f"import: {source} holds {len(ggufs)} GGUF files; pass the one to import")
    if not source.exists():
        raise UserError(f"import: source not found: {source}")
    raise UserError(f"import: {source} is neither a .gguf file nor a Hugging Face model directory (config.json)")


def gguf_metadata(path: Path, keys) -> tuple[dict[str, Any], dict[str, int]]:
    """Scalar metadata fields of a GGUF file (missing keys left out), and how many tensors of each type it holds."""
    from collections import Counter

    from gguf import GGUFReader

    reader = GGUFReader(path)  # ~2 s: it parses every field, the 49k-token vocabulary included
    fields = reader.fields
    return ({k: fields[k].contents() for k in keys if k in fields},
            dict(Counter(t.tensor_type.name for t in reader.tensors)))


def load_gguf(path: Path) -> tuple[Any, Any, list[str], dict]:
    """Model (dequantized to float32) and tokenizer from a GGUF file, the tokenizer's special tokens corrected
    from the file's own metadata; with the list of conversions made and what the source says of itself."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except ImportError as exc:
        raise UserError(f"import: reading GGUF needs the `gguf` package ({exc}); pip install gguf") from exc
    except (ValueError, KeyError, NotImplementedError) as exc:
        raise UserError(f"import: transformers cannot read {path}: {str(exc).splitlines()[0]}") from exc
    meta, types = gguf_metadata(path, [*SPECIAL_KEYS.values(), "tokenizer.ggml.padding_token_id", "general.name",
                                       "general.architecture", "general.license"])
    notes = [f"GGUF tensors ({', '.join(f'{n} {t}' for t, n in sorted(types.items()))}) dequantized to float32"]
    # transformers 5.17's GGUF tokenizer converter sets eos_token from the bos id (integrations/ggml.py); the
    # file's own ids are the truth: SmolLM2 would otherwise end its answers with <|im_start|>.
    for attr, key in SPECIAL_KEYS.items():
        if key in meta:
            want = tok.convert_ids_to_tokens(int(meta[key]))
            have = getattr(tok, attr)
            if have != want:
                setattr(tok, attr, want)
                notes.append(f"tokenizer {attr}: {have!r} -> {want!r} (GGUF {key}={meta[key]})")
    info = {"format": "gguf", "tensor_types": types,
            **{k: meta[k] for k in ("general.name", "general.architecture", "general.license") if k in meta}}
    pad_id = meta.get("tokenizer.ggml.padding_token_id")
    if tok.pad_token is None and pad_id is not None:
        # Not carried over on purpose: the file's pad is its eos (<|im_end|> on SmolLM2), and collators that mask
        # labels by pad id would then never train the model to stop. Stages choose a pad when they batch.
        info["padding_token_not_set"] = {"id": int(pad_id), "token": tok.convert_ids_to_tokens(int(pad_id))}
    return model, tok, notes, info


def load_hf(path: Path) -> tuple[Any, Any, list[str], dict]:
    """Model (in float32) and tokenizer from a Hugging Face directory, with what its files were."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"import: transformers cannot load {path}: {str(exc).splitlines()[0]}") from exc
    weights = sorted(p.name for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))
    src_dtype = str(getattr(model.config, "dtype", None) or "").replace("torch.", "")
    notes = [f"weights {', '.join(weights) or '(none)'} ({src_dtype or 'dtype unknown'}) read and written as "
             "safetensors"]
    return model, tok, notes, {"format": "hf", "weights": weights, "dtype": src_dtype or None}


def check_prompts(tok) -> list[str]:
    """The fixed prompts the logits are compared on: a chat turn through the model's own template, prose, code."""
    prompts = list(CHECK_TEXTS)
    if tok.chat_template:
        prompts.insert(0, tok.apply_chat_template([{"role": "user", "content": CHECK_QUESTION}],
                                                  add_generation_prompt=True, tokenize=False))
    return prompts


def prompt_logits(model, tok, prompts: list[str]) -> tuple[list[list[int]], list]:
    """Token ids and float32 logits of each prompt, one at a time (no padding: a tokenizer may have no pad)."""
    import torch

    ids, out = [], []
    with torch.inference_mode():
        for p in prompts:
            enc = tok(p, add_special_tokens=False, return_tensors="pt")
            ids.append(enc["input_ids"][0].tolist())
            out.append(model(**enc).logits[0].float())
    return ids, out


def clean_copy(model, dtype: str):
    """A plain model of the same architecture holding `model`'s weights, without the GGUF quantization config that
    makes save_pretrained refuse."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with no_init_weights():  # every weight is replaced below; random init of 135M params costs seconds
        clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # assign=True takes the loaded tensors instead of copying them: one copy of the weights in memory, not two.
    clean.load_state_dict(model.state_dict(), strict=True, assign=True)
    clean.tie_weights()
    clean.generation_config = copy.deepcopy(model.generation_config)
    return clean.to(getattr(torch, dtype))


def dir_size_mb(path: Path) -> float:
    """Total size of the files under `path`, in MB."""
    return round(sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e6, 1)


def import_model(source: str | Path, out: str | Path, *, dtype: str = "float32", tolerance: float | None = None,
                 echo: Callable[[str], None] = lambda m: None) -> Path:
    """Convert SOURCE (GGUF file or Hugging Face dir) into a verified safetensors model directory at `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shipit.registry import hash_path, stage_output

    settings = ImportSettings(source=Path(source), dtype=dtype, tolerance=tolerance)
    kind, path = source_kind(settings.source)
    limit = settings.tolerance or DEFAULT_TOLERANCE[settings.dtype]
    started = time.time()
    echo(f"import: reading {path} ({kind})")
    # A file's sha256 is what `sha256sum` prints; a directory's is shipit's hash of its files (registry.hash_path).
    sha = file_sha256(path) if kind == "gguf" else hash_path(path)
    model, tok, notes, info = (load_gguf if kind == "gguf" else load_hf)(path)
    model.eval()
    prompts = check_prompts(tok)
    ref_ids, ref = prompt_logits(model, tok, prompts)
    with stage_output(out, "import", settings, inputs={"source": path}) as run:
        clean = clean_copy(model, settings.dtype)
        del model
        n_params = sum(p.numel() for p in clean.parameters())
        if settings.dtype != "float32":
            notes.append(f"weights cast float32 -> {settings.dtype}")
        context = getattr(clean.config, "max_position_embeddings", None)
        clean.save_pretrained(run.dir)
        del clean
        if context and tok.model_max_length > 1e9:
            # GGUF tokenizers come without a length (1e30); the model's context is the honest one for truncation.
            tok.model_max_length = context
            notes.append(f"tokenizer model_max_length set to the model's context, {context}")
        if getattr(tok, "clean_up_tokenization_spaces", False) and kind == "gguf":
            # transformers ignores it for BPE tokenizers anyway, with a warning at every load.
            tok.clean_up_tokenization_spaces = False
        tok.save_pretrained(run.dir)
        # The check reads the output back from disk, as every stage will.
        out_tok = AutoTokenizer.from_pretrained(run.dir)
        out_model = AutoModelForCausalLM.from_pretrained(run.dir, dtype=getattr(torch, settings.dtype)).eval()
        out_ids, got = prompt_logits(out_model, out_tok, prompts)
        if out_ids != ref_ids:
            raise UserError(f"import: the written tokenizer encodes the check prompts differently from {path}")
        for attr in ("chat_template", "bos_token", "eos_token", "unk_token", "pad_token"):
            if getattr(out_tok, attr) != getattr(tok, attr):
                raise UserError(f"import: the written tokenizer's {attr} differs from the source's "
                                f"({getattr(out_tok, attr)!r} vs {getattr(tok, attr)!r})")
        diff = max(float((a - b).abs().max()) for a, b in zip(got, ref))
        if not diff <= limit:  # also catches NaN
            raise UserError(f"import: output logits differ from {path}'s by {diff:.3g} > tolerance {limit:g} "
                            f"(dtype {settings.dtype}); nothing was written")
        run.metrics.update(max_abs_logit_diff=diff, tolerance=limit, check_prompts=len(prompts),
                           check_tokens=sum(map(len, ref_ids)), parameters=n_params,
                           size_mb=dir_size_mb(run.dir), import_s=round(time.time() - started, 1))
        run.extra.update(source={"path": str(path.resolve()), "sha256": sha, **info}, converted=notes,
                         dtype=settings.dtype,
                         tokenizer={"class": type(out_tok).__name__, "vocab": len(out_tok),
                                    "chat_template": bool(out_tok.chat_template), "pad_token": out_tok.pad_token,
                                    "eos_token": out_tok.eos_token, "bos_token": out_tok.bos_token})
    echo(f"import: max |logit diff| {diff:.3g} (tolerance {limit:g}) on {len(prompts)} prompts; "
         f"{n_params / 1e6:.1f}M parameters, {dtype}")
    return Path(out)
