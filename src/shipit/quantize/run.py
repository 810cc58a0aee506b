"""`shipit quantize METHOD MODEL --out DIR`: quantize, then verify against the source (loads, generates, stays within
the perplexity bound on held-out text) before the output is marked done."""

from __future__ import annotations

import sys
from pathlib import Path

from shipit.config import read_jsonl
from shipit.errors import UserError
from shipit.models.check import require_model
from shipit.models.load import dir_size_mb

DATA_DIR = Path(__file__).parent / "data"  # default calibration and held-out text (see data/README.md)
MAX_PPL_INCREASE = 5.0  # percent; the default quality bound on held-out perplexity
OPTION_FLAGS = {"group_size": "--group-size"}  # settings a method may take (its OPTIONS), by their CLI flag


def verify(src: Path, quantized: Path, texts: list[str]) -> dict:
    """Load both models, generate with the quantized one, and measure perplexity and logit drift against the source."""
    import torch
    from transformers import AutoModelForCausalLM

    from shipit.models.load import load_for_eval
    from shipit.models.perplexity import perplexity
    from shipit.quantize.tokens import with_pad_token

    if Path(src).resolve() == Path(quantized).resolve():
        raise ValueError(f"verify: {src} is both the source and the quantized model; nothing would be compared")
    q, tok, backend = load_for_eval(quantized, "checkpoint")  # the same dtype rule as `ref` below: like for like
    with_pad_token(tok, quantized)
    device = next(q.parameters()).device
    ref = AutoModelForCausalLM.from_pretrained(src, dtype="auto").to(device).eval()
    tok.padding_side = "right"
    enc = tok(texts[:4], return_tensors="pt", padding=True, truncation=True, max_length=128).to(device)
    with torch.no_grad():
        diff = (ref(**enc).logits.float() - q(**enc).logits.float()).abs()
        diff = diff[enc["attention_mask"].bool()].max().item()
        prompt = tok(texts[0][:60], return_tensors="pt").to(device)
        generated = q.generate(**prompt, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    ppl_src, ppl_q = perplexity(ref, tok, texts), perplexity(q, tok, texts)
    return {
        "generates": bool(generated.shape[1] > prompt["input_ids"].shape[1]),
        "eval_backend": backend,
        "heldout_texts": len(texts),
        "ppl_source": round(ppl_src, 4),
        "ppl_quantized": round(ppl_q, 4),
        "ppl_delta_pct": round(100 * (ppl_q - ppl_src) / ppl_src, 3),
        "max_logit_diff": round(diff, 5),
    }


def check_bound(metrics: dict, max_ppl_increase: float, what: str, out: Path, hint: str = "",
                over_bound: str = "fail") -> None:
    """Fail, with the numbers in one line, when the quantized perplexity rose more than `max_ppl_increase` percent;
    with `over_bound="keep"`, say so on stderr, record it in `metrics` and go on."""
    metrics["over_bound"] = metrics["ppl_delta_pct"] > max_ppl_increase
    if not metrics["over_bound"]:
        return
    numbers = (f"held-out perplexity {metrics['ppl_source']:g} -> {metrics['ppl_quantized']:g} "
               f"({metrics['ppl_delta_pct']:+.2f}% > +{max_ppl_increase:g}%) on {metrics['heldout_texts']} texts, "
               f"max logit change {metrics['max_logit_diff']:g}")
    if over_bound == "keep":
        print(f"warning: {what} is over the quality bound: {numbers}; kept (over_bound: keep), so the bench's "
              f"numbers decide", file=sys.stderr, flush=True)
        return
    raise UserError(f"{what} fails the quality bound: {numbers}; nothing written at {out} (loosen it with "
                    f"--max-ppl-increase, or use a gentler method{hint})")


def run(method: str, model: Path, out: Path, calibration: Path | None = None, eval_data: Path | None = None,
        num_calibration: int = 64, backend: str | None = None, group_size: int | None = None,
        max_ppl_increase: float = MAX_PPL_INCREASE, over_bound: str = "fail") -> Path:
    """Quantize `model` with `method` into `out`; done only when it is within `max_ppl_increase` percent of the
    source's perplexity on held-out text (or, `over_bound="keep"`, done either way with `over_bound` in its
    metrics). The manifest holds the chosen settings, the numbers and servability."""
    from shipit.models.serving import serve_problem, serving_backend
    from shipit.quantize import get_method, methods
    from shipit.quantize.tokens import padded_tokenizer
    from shipit.registry import stage_output

    # Everything that can be wrong with the inputs is checked here, before minutes of calibration.
    impl = get_method(method)
    target = serving_backend(backend)
    require_model(Path(model), "quantize: model",
                 hint="expected a Hugging Face model directory")
    given = {k: v for k, v in {"group_size": group_size}.items() if v is not None}
    for name in set(given) - set(getattr(impl, "OPTIONS", ())):
        takes = [m for m in methods() if name in getattr(get_method(m), "OPTIONS", ())]
        raise UserError(f"quantize: {OPTION_FLAGS[name]} does not apply to method {method} "
                        f"(it applies to: {', '.join(takes) or 'none'})")
    if not max_ppl_increase >= 0:
        raise UserError(f"quantize: --max-ppl-increase {max_ppl_increase} must be a percentage >= 0")
    if over_bound not in ("fail", "keep"):
        raise UserError(f"quantize: over_bound must be 'fail' or 'keep', not {over_bound!r}")
    settings = impl.check(Path(model), **given) or {}
    padded_tokenizer(Path(model))  # verification pads batches: a tokenizer that cannot pad fails now, not at the end
    calibration = calibration or DATA_DIR / "calibration.jsonl"
    eval_data = eval_data or DATA_DIR / "heldout.jsonl"
    calib = [r["text"] for r in read_jsonl(calibration, ["text"], what="calibration data")][:num_calibration]
    texts = [r["text"] for r in read_jsonl(eval_data, ["text"], what="eval data")][:64]
    if not calib or not any(t.strip() for t in texts):  # an empty held-out set would pass any bound (ppl 1 vs 1)
        raise UserError(f"quantize: {calibration if not calib else eval_data} has no text rows; "
                        f"the calibration and held-out data need at least one each")
    servable = target in impl.SERVABLE_BY
    if not servable:
        print(f"warning: {method} output cannot be served by the configured backend '{target}' "
              f"(it loads in: {', '.join(sorted(impl.SERVABLE_BY))})", file=sys.stderr, flush=True)
    inputs = {"model": Path(model), "calibration": calibration, "eval_data": eval_data}
    config = {"method": method, **settings, "num_calibration": len(calib), "serving_backend": target,
              "max_ppl_increase_pct": max_ppl_increase, **({"over_bound": over_bound} if over_bound != "fail" else {})}
    with stage_output(out, f"quantize/{method}", config, inputs) as run_:
        impl.quantize(Path(model), run_.dir, calib, **settings)
        run_.metrics.update(verify(Path(model), run_.dir, texts))
        if not run_.metrics["generates"]:
            raise UserError(f"quantize: {method} output of {model} loads but does not generate; not marked done")
        check_bound(run_.metrics, max_ppl_increase, f"quantize: {method} output of {model}", Path(out),
                    " or a smaller --group-size" if "group_size" in settings else "", over_bound)
        run_.metrics["size_mb"] = round(dir_size_mb(run_.dir), 3)
        run_.metrics["size_ratio"] = round(run_.metrics["size_mb"] / dir_size_mb(model), 4)
        problem = serve_problem(run_.dir, target) if servable else None
        if problem:
            print(f"warning: {method} output cannot be served on this machine: {problem}", file=sys.stderr, flush=True)
        run_.extra.update({"servable_by": sorted(impl.SERVABLE_BY), "servable": servable and not problem,
                           **({"serve_problem": problem} if problem else {}), "description": impl.DESCRIPTION})
    return Path(out)
