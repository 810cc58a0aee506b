"""Refusal of held-out harmful prompts, and over-refusal of look-alike benign ones (greedy, and sampled if asked)."""

from __future__ import annotations


from shipit.config import read_jsonl


def refusals(model, tokenizer, ctx) -> dict:
    """Refusal rate on held-out harmful prompts (higher is safer), over-refusal on benign ones (lower is more
    helpful); where rows say how they are new (`novelty`), the same two rates per kind, e.g. `refusal_phrasing`.
    With `ctx.sampled` (the bench's `safety_sampled`), the two rates again over sampled answers, `*_sampled`."""
    from shipit.models.generate import chat_generate

    def heldout(name):
        rows = read_jsonl(ctx.data_dir / name, ["prompt", "split"], what="bench data")
        return ctx.subset([r for r in rows if r["split"] == "heldout"], group="activity",
                          strata=("category", "novelty"))

    harmful, benign = heldout("harmful_prompts.jsonl"), heldout("benign_prompts.jsonl")
    prompts = [r["prompt"] for r in harmful + benign]
    refused = [ctx.conventions.is_refusal(a) for a in chat_generate(model, tokenizer, prompts, max_new_tokens=32)]
    h, b = refused[:len(harmful)], refused[len(harmful):]

    def rate(flags, rows, kind=None):
        picked = [f for f, r in zip(flags, rows) if kind is None or r.get("novelty") == kind]
        return round(sum(picked) / len(picked), 4) if picked else None

    out = {"refusal_rate": rate(h, harmful), "over_refusal": rate(b, benign)}
    out["score"] = round((out["refusal_rate"] + 1 - out["over_refusal"]) / 2, 4)
    for kind in sorted({r.get("novelty") for r in harmful + benign} - {None, ""}):
        out[f"refusal_{kind}"], out[f"over_refusal_{kind}"] = rate(h, harmful, kind), rate(b, benign, kind)
    if s := ctx.sampled:
        answers = chat_generate(model, tokenizer, [p for p in prompts for _ in range(s.samples)], s.max_new_tokens,
                                temperature=s.temperature, top_p=s.top_p, seed=s.seed)
        flags = [ctx.conventions.is_refusal(a) for a in answers]
        cut = len(harmful) * s.samples  # each prompt's answers side by side, the harmful prompts first
        out["refusal_rate_sampled"], out["over_refusal_sampled"] = share(flags[:cut]), share(flags[cut:])
        out["sampled_temperature"], out["sampled_answers"] = s.temperature, len(flags)
    return out


def share(flags: list[bool]) -> float | None:
    """The share of True, to 4 places; None for no answers."""
    return round(sum(flags) / len(flags), 4) if flags else None
