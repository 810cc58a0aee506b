"""`shipit quantize METHOD MODEL --out DIR`: quantize, then verify (loads, generates, quality delta) before done."""

from __future__ import annotations

from pathlib import Path

from shipit.config import read_jsonl, require_path
from shipit.demo.world import DATA_DIR


def dir_size_mb(path: Path) -> float:
    """Size of the weight files under `path`, in MB."""
    return sum(p.stat().st_size for p in Path(path).rglob("*.safetensors")) / 1e6


def verify(src: Path, quantized: Path, texts: list[str]) -> dict:
    """Load both models, generate with the quantized one, and measure perplexity and logit drift against the source."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shipit.bench.perplexity import perplexity

    tok = AutoTokenizer.from_pretrained(quantized)
    ref = AutoModelForCausalLM.from_pretrained(src, dtype="auto").eval()
    q = AutoModelForCausalLM.from_pretrained(quantized).eval()
    enc = tok(texts[:4], return_tensors="pt", padding=True, truncation=True, max_length=128)
    with torch.no_grad():
        diff = (ref(**enc).logits.float() - q(**enc).logits.float()).abs()
        diff = diff[enc["attention_mask"].bool()].max().item()
        generated = q.generate(**tok(texts[0][:60], return_tensors="pt"), max_new_tokens=8, do_sample=False)
    ppl_src, ppl_q = perplexity(ref, tok, texts), perplexity(q, tok, texts)
    return {
        "generates": generated.shape[1] > 0,
        "ppl_source": round(ppl_src, 4),
        "ppl_quantized": round(ppl_q, 4),
        "ppl_delta_pct": round(100 * (ppl_q - ppl_src) / ppl_src, 3),
        "max_logit_diff": round(diff, 5),
    }


def run(method: str, model: Path, out: Path, calibration: Path | None = None, eval_data: Path | None = None,
        num_calibration: int = 64) -> Path:
    """Quantize `model` with `method` into `out`; the manifest holds the verification numbers."""
    from shipit.quantize import get_method
    from shipit.registry import stage_output

    impl = get_method(method)
    require_path(Path(model) / "config.json", "quantize: model", kind="file",
                 hint="expected a Hugging Face model directory")
    impl.check(Path(model))
    calibration = calibration or DATA_DIR / "general_train.jsonl"
    eval_data = eval_data or DATA_DIR / "general_heldout.jsonl"
    calib = [r["text"] for r in read_jsonl(calibration, ["text"], what="calibration data")][:num_calibration]
    texts = [r["text"] for r in read_jsonl(eval_data, ["text"], what="eval data")][:64]
    inputs = {"model": Path(model), "calibration": calibration}
    with stage_output(out, f"quantize/{method}", {"method": method, "num_calibration": len(calib)}, inputs) as run_:
        impl.quantize(Path(model), run_.dir, calib)
        run_.metrics.update(verify(Path(model), run_.dir, texts))
        run_.metrics["size_mb"] = round(dir_size_mb(run_.dir), 3)
        run_.metrics["size_ratio"] = round(run_.metrics["size_mb"] / dir_size_mb(model), 4)
        run_.extra["vllm_loadable"] = impl.VLLM_LOADABLE
    return Path(out)
