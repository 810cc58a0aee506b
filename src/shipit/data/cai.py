"""`shipit data cai`: constitutional AI. SL-CAI critiques and revises answers under sampled principles into SFT
data; RL-CAI (RLAIF) labels pairs of answers with a feedback model's A/B probabilities as soft DPO labels."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

from pydantic import Field

from shipit.config import StrictModel, load_yaml, read_jsonl, validate
from shipit.data.generators import GeneratorSettings
from shipit.data.scorers import ScorerSpec, Scoring
from shipit.data.sources import PromptSource


class Principle(StrictModel):
    """One constitutional principle: how to critique a response, and how to revise it."""

    name: str
    critique_request: str
    revision_request: str


class Constitution(StrictModel):
    """A constitution YAML: `principles: [{name, critique_request, revision_request}, ...]`."""

    principles: list[Principle] = Field(min_length=1)


def load_constitution(path: str | Path) -> list[Principle]:
    """The principles of a constitution YAML; a malformed entry is named by file:line and field."""
    data, text = load_yaml(path, "constitution")
    return validate(data, Constitution, str(path), text).principles


class SLSettings(StrictModel):
    """Supervised CAI: answer, then `rounds` of critique -> revision, each under a fresh principle."""

    enabled: bool = True
    rounds: int = Field(2, ge=1)
    temperature: float = Field(0.7, ge=0)


class RLSettings(StrictModel):
    """RL-CAI: two answers per prompt, compared by the feedback model under `principles` sampled principles."""

    enabled: bool = True
    principles: int = Field(3, ge=1)
    temperature: float = Field(1.0, ge=0)


class KeepSettings(StrictModel):
    """A quality gate on the generated data: revisions (and the chosen side of pairs) scoring below `min_score`
    are dropped, so a model too weak to follow the constitution does not put its noise into training."""

    scorers: list[ScorerSpec] = Field(min_length=1)
    min_score: float = Field(0.5, ge=0, le=1)


class CAIConfig(StrictModel):
    """A constitutional-AI data run. Writes `sft.jsonl` (final revisions, plus helpful samples) and `pairs.jsonl`
    (`soft_label` = P(chosen is better), averaged over principles) to `output`, with provenance per row."""

    generator: GeneratorSettings
    """The model whose answers are critiqued and revised (usually the student)."""
    feedback: GeneratorSettings | None = None
    """The model that critiques, revises and compares (default: the generator)."""
    constitution: Path
    prompts: list[PromptSource] = Field(min_length=1)
    helpful: list[Path] = []
    """JSONL files of `{"messages"}` rows added to the SFT data as they are (helpfulness samples)."""
    helpful_limit: int | None = Field(None, ge=0)
    sl: SLSettings = SLSettings()
    rl: RLSettings = RLSettings()
    keep: KeepSettings | None = None
    """Score generated rows and keep those at or above `min_score` (default: keep all)."""
    output: Path
    seed: int = 0


def _turn(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def critique_revise(gen, feedback, prompts: list[str], principles: list[Principle], s: SLSettings,
                    rng: random.Random, seed: int) -> list[dict]:
    """SFT rows for a batch of prompts: the final revision after `s.rounds` critique/revision rounds."""
    answers = gen.generate(prompts, temperature=s.temperature, seed=seed)
    history = [[] for _ in prompts]
    current = list(answers)
    for r in range(s.rounds):
        picked = []
        for h in history:  # a fresh principle each round while any is left unused for this prompt
            used = {x["principle"] for x in h}
            pool = [p for p in principles if p.name not in used] or principles
            picked.append(rng.choice(pool))
        base = [[_turn("user", p), _turn("assistant", a)] for p, a in zip(prompts, current)]
        ask_critique = [b + [_turn("user", pr.critique_request)] for b, pr in zip(base, picked)]
        critiques = feedback.generate(ask_critique, temperature=0.0)
        ask_revision = [c + [_turn("assistant", cr), _turn("user", pr.revision_request)]
                        for c, cr, pr in zip(ask_critique, critiques, picked)]
        current = feedback.generate(ask_revision, temperature=0.0)
        for h, pr, cr, rev in zip(history, picked, critiques, current):
            h.append({"principle": pr.name, "critique": cr, "revision": rev})
    return [{"messages": [_turn("user", p), _turn("assistant", final)],
             "provenance": {"generator": gen.describe(), "feedback": feedback.describe(), "initial": a,
                            "temperature": s.temperature, "rounds": h, "source": "sl-cai"}}
            for p, a, final, h in zip(prompts, answers, current, history)]


def comparison_prompt(prompt: str, principle: Principle, a: str, b: str) -> str:
    """The multiple-choice question the feedback model answers with A or B."""
    return (f"Consider this request from a user:\n{prompt}\n\nPrinciple: {principle.revision_request}\n"
            f"Which response follows the principle better?\n(A) {a}\n(B) {b}\nAnswer with A or B.")


def parse_choice(text: str) -> str | None:
    """The first standalone A or B in a verdict."""
    m = re.search(r"(?<![A-Za-z])([AB])(?![A-Za-z])", text)
    return m.group(1) if m else None


def prob_a(logprobs: dict[str, float]) -> float:
    """P(A) normalized over A and B from their log-probabilities."""
    m = max(logprobs["A"], logprobs["B"])
    ea, eb = math.exp(logprobs["A"] - m), math.exp(logprobs["B"] - m)
    return ea / (ea + eb)


def ai_feedback(gen, feedback, prompts: list[str], principles: list[Principle], s: RLSettings,
                rng: random.Random, seed: int) -> tuple[list[dict], dict]:
    """Soft-labelled pairs for a batch of prompts, and how the labels were obtained (logprobs or parsed)."""
    first = gen.generate(prompts, temperature=s.temperature, seed=seed)
    second = gen.generate(prompts, temperature=s.temperature, seed=seed + 1)
    asks, where = [], []
    for i, (p, a, b) in enumerate(zip(prompts, first, second)):
        for pr in rng.sample(principles, min(s.principles, len(principles))):
            swap = rng.random() < 0.5  # both orders, so the position bias of the judge averages out
            asks.append(comparison_prompt(p, pr, b, a) if swap else comparison_prompt(p, pr, a, b))
            where.append((i, pr.name, swap))
    logprobs = feedback.choice_logprobs(asks)
    method = "logprobs" if logprobs is not None else "parsed"
    if logprobs is not None:
        p_first_slot = [prob_a(lp) for lp in logprobs]
    else:
        verdicts = [parse_choice(v) for v in feedback.generate(asks, temperature=0.0, max_new_tokens=4)]
        p_first_slot = [1.0 if v == "A" else 0.0 if v == "B" else 0.5 for v in verdicts]
    votes: list[list[dict]] = [[] for _ in prompts]
    for (i, name, swap), pa in zip(where, p_first_slot):
        votes[i].append({"principle": name, "p_first": round(1 - pa if swap else pa, 4), "swapped": swap})
    rows, identical = [], 0
    for p, a, b, v in zip(prompts, first, second, votes):
        if a.strip() == b.strip():
            identical += 1
            continue
        p_a = sum(x["p_first"] for x in v) / len(v)
        better, worse = (a, b) if p_a >= 0.5 else (b, a)
        rows.append({"prompt": [_turn("user", p)], "chosen": [_turn("assistant", better)],
                     "rejected": [_turn("assistant", worse)], "soft_label": round(max(p_a, 1 - p_a), 4),
                     "provenance": {"generator": gen.describe(), "feedback": feedback.describe(), "method": method,
                                    "temperature": s.temperature, "p_a": round(p_a, 4), "p_b": round(1 - p_a, 4),
                                    "votes": v, "source": "rl-cai"}})
    return rows, {method: len(asks), "identical_skipped": identical}


def keep_scoring(keep: KeepSettings, revisions: list[dict], pairs: list[dict]) -> tuple[list[dict], list[dict]]:
    """The revisions, and the pairs whose chosen answer, that score at least `keep.min_score` (scores recorded in
    each kept row's provenance)."""
    scoring = Scoring(keep.scorers)
    try:
        def kept(rows, prompt_of, answer_of):
            scored = scoring([prompt_of(r) for r in rows], [answer_of(r) for r in rows]) if rows else []
            out = []
            for r, sc in zip(rows, scored):
                if sc["score"] >= keep.min_score:
                    out.append({**r, "provenance": {**r["provenance"], "keep_score": sc["score"]}})
            return out

        return (kept(revisions, lambda r: r["messages"][0]["content"], lambda r: r["messages"][-1]["content"]),
                kept(pairs, lambda r: r["prompt"][0]["content"], lambda r: r["chosen"][0]["content"]))
    finally:
        scoring.close()


def run(cfg: CAIConfig, resume: bool = False) -> Path:
    """Run SL-CAI and RL-CAI over the prompts; write sft.jsonl and pairs.jsonl to `cfg.output`."""
    from shipit.data.generators import make_generator
    from shipit.data.progress import ProgressLog, write_jsonl
    from shipit.data.sources import read_prompts
    from shipit.registry import stage_output

    principles = load_constitution(cfg.constitution)
    prompts = [r["prompt"] for src in cfg.prompts for r in read_prompts(src)]
    helpful = [{"messages": r["messages"], "provenance": {"source": str(path)}}
               for path in cfg.helpful for r in read_jsonl(path, ["messages"], what="helpful data")]
    helpful = helpful[:cfg.helpful_limit] if cfg.helpful_limit is not None else helpful
    inputs = {"constitution": cfg.constitution, **{f"prompts{i}": s.path for i, s in enumerate(cfg.prompts)},
              **{f"helpful{i}": p for i, p in enumerate(cfg.helpful)}}
    for role, gen_settings in (("generator", cfg.generator), ("feedback", cfg.feedback)):
        if gen_settings is not None and gen_settings.model:  # local models are parents in the lineage
            inputs[role] = gen_settings.model
    bs = cfg.generator.batch_size
    with stage_output(cfg.output, "data/cai", cfg, inputs, resume=resume, keep_on_error=True) as out:
        sl_log, rl_log = ProgressLog(out.dir / "sl.jsonl"), ProgressLog(out.dir / "rl.jsonl")
        counts = {"logprobs": 0, "parsed": 0, "identical_skipped": 0}
        gen = make_generator(cfg.generator)
        feedback = make_generator(cfg.feedback) if cfg.feedback else gen
        try:
            for start in range(0, len(prompts), bs):
                key, batch = str(start), prompts[start:start + bs]
                # Seeded per batch and part, so a resumed run samples the same principles as the first one.
                if cfg.sl.enabled and key not in sl_log:
                    rng = random.Random(f"{cfg.seed}:sl:{start}")
                    sl_log.commit(key, critique_revise(gen, feedback, batch, principles, cfg.sl, rng, cfg.seed + start))
                if cfg.rl.enabled and key not in rl_log:
                    rng = random.Random(f"{cfg.seed}:rl:{start}")
                    rows, c = ai_feedback(gen, feedback, batch, principles, cfg.rl, rng, cfg.seed + start)
                    rl_log.commit(key, rows)
                    for k, v in c.items():
                        counts[k] += v
        finally:
            gen.close()
            if feedback is not gen:
                feedback.close()
        generated_revisions, generated_pairs = sl_log.rows(), rl_log.rows()
        revisions, pairs = generated_revisions, generated_pairs
        if cfg.keep is not None:
            revisions, pairs = keep_scoring(cfg.keep, revisions, pairs)
        sft = revisions + helpful
        write_jsonl(out.dir / "sft.jsonl", sft)
        write_jsonl(out.dir / "pairs.jsonl", pairs)
        methods = {r["provenance"]["method"] for r in generated_pairs}  # how labels were made, kept or not
        out.metrics.update({"prompts": len(prompts), "principles": len(principles),
                            "revisions": len(generated_revisions), "revisions_kept": len(revisions),
                            "pairs_generated": len(generated_pairs),
                            "helpful_rows": len(helpful), "sft_rows": len(sft), "pairs": len(pairs),
                            "mean_soft_label": round(sum(r["soft_label"] for r in pairs) / max(1, len(pairs)), 4),
                            "batches_resumed": max(sl_log.resumed, rl_log.resumed)})
        out.extra["feedback"] = {"method": "/".join(sorted(methods)) or "none",
                                 "fallback_to_parsed_choices": "parsed" in methods,
                                 "comparisons_this_run": counts}
    return cfg.output
