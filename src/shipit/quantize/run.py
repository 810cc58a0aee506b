"""`shipit quantize METHOD MODEL --out DIR`: quantize, then verify (loads, generates, quality delta) before done."""

from __future__ import annotations

import sys
from pathlib import Path

from shipit.config import read_jsonl
from shipit.models.check import require_model
from shipit.models.load import dir_size_mb

DATA_DIR = Path(__file__).parent / "data"  # default calibration and held-out text (see data/README.md)


def verify(src: Path, quantized: Path, texts: list[str]) -> dict:
    """Load both models, generate with the quantized one, and measure perplexity and logit drift against the source."""
    import torch
    from transformers import AutoModelForCausalLM

    from shipit.models.perplexity import perplexity
    from shipit.models.load import load_for_eval

    q, tok, backend = load_for_eval(quantized)
    ref = AutoModelForCausalLM.from_pretrained(src, dtype="auto").to(next(q.parameters()).device).eval()
    tok.padding_side = "right"
    enc = tok(texts[:4], return_tensors="pt", padding=True, truncation=True, max_length=128).to(
        next(q.parameters()).device)
    with torch.no_grad():
        diff = (ref(**enc).logits.float() - q(**enc).logits.float()).abs()
        diff = diff[enc["attention_mask"].bool()].max().item()
        prompt = tok(texts[0][:60], return_tensors="pt").to(next(q.parameters()).device)
        generated = q.generate(**prompt, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    ppl_src, ppl_q = perplexity(ref, tok, texts), perplexity(q, tok, texts)
    return {
        "generates": bool(generated.shape[1] > prompt["input_ids"].shape[1]),
        "eval_backend": backend,
        "ppl_source": round(ppl_src, 4),
        "ppl_quantized": round(ppl_q, 4),
        "ppl_delta_pct": round(100 * (ppl_q - ppl_src) / ppl_src, 3),
        "max_logit_diff": round(diff, 5),
    }


def run(method: str, model: Path, out: Path, calibration: Path | None = None, eval_data: Path | None = None,
        num_calibration: int = 64, backend: str | None = None) -> Path:
    """Quantize `model` with `method` into `out`; the manifest holds the verification numbers and servability."""
    from shipit.errors import UserError
    from shipit.quantize import get_method, serving_backend
    from shipit.registry import stage_output

    impl = get_method(method)
    target = serving_backend(backend)
    require_model(Path(model), "quantize: model",
                 hint="expected a Hugging Face model directory")
    impl.check(Path(model))
    calibration = calibration or DATA_DIR / "calibration.jsonl"
    eval_data = eval_data or DATA_DIR / "heldout.jsonl"
    calib = [r["text"] for r in read_jsonl(calibration, ["text"], what="calibration data")][:num_calibration]
    texts = [r["text"] for r in read_jsonl(eval_data, ["text"], what="eval data")][:64]
    servable = target in impl.SERVABLE_BY
    if not servable:
        print(f"warning: {method} output cannot be served by the configured backend '{target}' "
              f"(it loads in: {', '.join(sorted(impl.SERVABLE_BY))})", file=sys.stderr, flush=True)
    inputs = {"model": Path(model), "calibration": calibration}
    config = {"method": method, "num_calibration": len(calib), "serving_backend": target}
    with stage_output(out, f"quantize/{method}", config, inputs) as run_:
        impl.quantize(Path(model), run_.dir, calib)
        run_.metrics.update(verify(Path(model), run_.dir, texts))
        if not run_.metrics["generates"]:
            raise UserError(f"quantize: {method} output of {model} loads but does not generate; not marked done")
        run_.metrics["size_mb"] = round(dir_size_mb(run_.dir), 3)
        run_.metrics["size_ratio"] = round(run_.metrics["size_mb"] / dir_size_mb(model), 4)
        run_.extra.update({"servable_by": sorted(impl.SERVABLE_BY), "servable": servable,
                           "description": impl.DESCRIPTION})
    return Path(out)
