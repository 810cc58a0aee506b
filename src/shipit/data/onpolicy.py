"""`shipit data onpolicy`: preference pairs from a model's own mistakes. The model answers the prompts of reference
chat rows; each answer the scorers reject (with no scorers: each answer that is not the reference answer) is paired,
as the rejected side, with the reference answer as chosen."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from shipit.config import StrictModel
from shipit.data.generators import GeneratorSettings
from shipit.data.scorers import ScorerSpec
from shipit.data.sources import PromptSource


class OnPolicyConfig(StrictModel):
    """An on-policy pairs run. DPO moves a model where its rejected answers lie: pairs whose rejected side is the
    model's own answer target the mistakes it actually makes. Writes `pairs.jsonl` (`{"prompt", "chosen",
    "rejected"}`, TRL conversational, with provenance) and `answers.jsonl` (every answer with its score) to
    `output`.

    In the demo the attention-only safety SFT refused 330 of the 486 harmless training look-alikes: all 330 as pairs
    took its held-out over-refusal 0.27 -> 0.05 and its refusals 0.80 -> 0.30; a third of them, 0.14 and 0.60
    (benchmarks/RESULTS.md, E3)."""

    generator: GeneratorSettings
    """The model whose mistakes are collected."""
    references: list[PromptSource] = Field(min_length=1)
    """JSONL files of chat rows (`field: messages`): the first user turn is the prompt, the assistant turn after
    it the chosen answer."""
    scorers: list[ScorerSpec]
    """How an answer is scored, e.g. `refusal_policy` (an answer that refuses a harmless request scores 0). None
    (`[]`): an answer is a mistake when it is not the reference answer (whitespace aside), so the pairs pull the
    model back toward the references, e.g. toward the instruct model's own answers in the demo's replay."""
    min_score: float = Field(1.0, ge=0, le=1)
    """An answer scoring below this is a mistake."""
    skip_refusals: bool = False
    """A mistake that is a refusal (by the default conventions) is not paired: the manifest counts them
    (`refusals_skipped`). For the demo's pairs toward the instruct model's own answers (no scorers), whose point is
    what the model knew, not when it refuses: with the merge's 8 refusals among seed 2's 130 pairs its heal refused
    0.37 of the held-out harmful requests, without them 0.64 (partly the noise of which pairs a run sees;
    benchmarks/RESULTS.md, R31)."""
    fraction: float = Field(1.0, gt=0, le=1)
    """The share of the mistakes that become pairs, evenly spaced in file order (so every activity keeps some)."""
    temperature: float = Field(0.0, ge=0)
    """0: greedy answers, the mistakes the model makes most. Above 0 the answers are sampled (nucleus `top_p`, no
    top-k, as vLLM serves them), so the pairs also hold the mistakes it makes only sometimes: the demo's safety SFT
    refused 98% of held-out harmful requests greedy and 77% sampled at 0.8 (benchmarks/RESULTS.md)."""
    top_p: float = Field(1.0, gt=0, le=1)
    samples: int = Field(1, ge=1)
    """Answers per prompt (needs temperature > 0); an answer repeated for the same prompt is paired once."""
    seed: int = 0
    """Seed of the sampled answers (each batch of each sample has its own, so a resumed run answers the same)."""
    output: Path

    @field_validator("samples")
    @classmethod
    def _samples_need_sampling(cls, samples, info):
        if samples > 1 and info.data.get("temperature") == 0:  # temperature is declared (so validated) first
            raise ValueError(f"samples: {samples} greedy answers per prompt are all the same; set temperature "
                             "above 0 (e.g. 0.8) or samples: 1")
        return samples

    @field_validator("references")
    @classmethod
    def _chat_rows(cls, refs):
        bad = [r for r in refs if r.field != "messages"]
        if bad:
            raise ValueError(f"{bad[0].path}: field must be 'messages' (chat rows carry the chosen answer), "
                             f"not '{bad[0].field}'")
        return refs


def evenly_spaced(items: list, fraction: float) -> list:
    """round(len * fraction) of `items`, spread evenly from the first (0.33 of 330: about every third)."""
    n = len(items)
    count = round(n * fraction)
    return [items[i * n // count] for i in range(count)] if count else []


def same_as_reference(reference: str, answer: str) -> dict:
    """The score with no scorers: 1 when the answer is the reference answer (whitespace aside), else 0."""
    score = float(" ".join(answer.split()) == " ".join(reference.split()))
    return {"score": score, "scores": {"reference": score}}


def mistakes(answered: list[dict], min_score: float, skip_refusals: bool = False) -> tuple[list[dict], int]:
    """The answers to pair, in order: each scoring below `min_score`, a prompt's answer sampled twice once; and how
    many distinct refusals `skip_refusals` left out."""
    from shipit.conventions import is_refusal

    distinct: dict[tuple[str, str], dict] = {}
    for r in answered:
        if r["score"] < min_score:
            distinct.setdefault((r["prompt"], r["completion"]), r)
    found = [r for r in distinct.values() if not (skip_refusals and is_refusal(r["completion"]))]
    return found, len(distinct) - len(found)


def read_references(cfg: OnPolicyConfig) -> list[dict]:
    """Rows `{"prompt", "topic", "answer"}`; a row with no assistant turn after its prompt is named by file:line."""
    from shipit.data.sources import read_prompts
    from shipit.errors import UserError

    rows = []
    for src in cfg.references:
        for r in read_prompts(src, answers=True):
            if not isinstance(r["answer"], str) or not r["answer"].strip():
                raise UserError(f"{src.path}:{r['line']}: field 'messages' needs an assistant turn after the user "
                                "turn (the chosen answer)")
            rows.append(r)
    return rows


def run(cfg: OnPolicyConfig, resume: bool = False) -> Path:
    """Answer every reference prompt, score the answers, pair the mistakes; write the outputs to `cfg.output`."""
    from shipit.data.generators import make_generator
    from shipit.data.progress import ProgressLog, write_jsonl
    from shipit.data.scorers import Scoring
    from shipit.registry import stage_output

    refs = read_references(cfg)
    inputs = {f"references{i}": s.path for i, s in enumerate(cfg.references)}
    if cfg.generator.model:
        inputs["generator"] = cfg.generator.model
    bs = cfg.generator.batch_size
    with stage_output(cfg.output, "data/onpolicy", cfg, inputs, resume=resume, keep_on_error=True) as out:
        log = ProgressLog(out.dir / "answers.jsonl")
        with make_generator(cfg.generator) as gen:
            scoring = Scoring(cfg.scorers, shared=(cfg.generator, gen)) if cfg.scorers else None
            try:
                for start in range(0, len(refs), bs):  # batch by batch, each sample of it: pairs in file order
                    batch = refs[start:start + bs]
                    for sample in range(cfg.samples):
                        key = str(start) if sample == 0 else f"{start}:{sample}"  # sample 0 keyed as before samples
                        if key in log:
                            continue
                        answers = gen.generate([r["prompt"] for r in batch], temperature=cfg.temperature,
                                               top_p=cfg.top_p, seed=cfg.seed + 1_000_003 * sample + start)
                        scores = (scoring([r["prompt"] for r in batch], answers) if scoring
                                  else [same_as_reference(r["answer"], a) for r, a in zip(batch, answers)])
                        log.commit(key, [{**r, "completion": a, "sample": sample, "score": sc["score"],
                                          "scores": sc["scores"], "generator": gen.describe()}
                                         for r, a, sc in zip(batch, answers, scores)])
            finally:
                if scoring:
                    scoring.close()
        answered = log.rows()
        found, skipped = mistakes(answered, cfg.min_score, cfg.skip_refusals)
        pairs = [{"prompt": [{"role": "user", "content": r["prompt"]}],
                  "chosen": [{"role": "assistant", "content": r["answer"]}],
                  "rejected": [{"role": "assistant", "content": r["completion"]}],
                  "topic": r["topic"],
                  "provenance": {"source": "onpolicy", "generator": r["generator"], "rejected_score": r["score"],
                                 "scores": r["scores"]}}
                 for r in evenly_spaced(found, cfg.fraction)]
        write_jsonl(out.dir / "pairs.jsonl", pairs)
        wrong = sum(r["score"] < cfg.min_score for r in answered)
        out.metrics.update({"prompts": len(refs), "answers": len(answered), "temperature": cfg.temperature,
                            "wrong_answers": wrong, "mistake_rate": round(wrong / max(1, len(answered)), 4),
                            "mistakes": len(found), "pairs": len(pairs), "batches_resumed": log.resumed})
        if cfg.skip_refusals:
            out.metrics["refusals_skipped"] = skipped
        out.extra["judge_unparsed"] = scoring.stats() if scoring else {}
    return cfg.output
