"""`shipit data synth`: instructions from topics x templates, deduplicated, answered at several temperatures,
scored, filtered into SFT rows and turned into preference pairs, every row with its provenance."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from shipit.config import StrictModel
from shipit.data.generators import GeneratorSettings
from shipit.data.scorers import ScorerSpec
from shipit.data.sources import PromptSource


class InstructionSettings(StrictModel):
    """Where instructions come from: the generator writes one per (topic, template, sample), plus prompt files."""

    topics: list[str] = []
    templates: list[str] = []
    """Requests to the generator, each containing `{topic}`, e.g. 'Write one question a user asks about {topic}.'"""
    samples_per_template: int = Field(1, ge=1)
    temperature: float = Field(1.0, ge=0)
    max_new_tokens: int = Field(48, ge=1)
    files: list[PromptSource] = []
    """Existing prompts, used as they are."""
    dedup_threshold: float | None = Field(0.8, gt=0, le=1)
    """Estimated Jaccard similarity (MinHash of word trigrams) at which a later instruction is a near-duplicate;
    null keeps them all."""

    @field_validator("templates")
    @classmethod
    def _has_topic(cls, templates):
        bad = [t for t in templates if "{topic}" not in t]
        if bad:
            raise ValueError(f"template {bad[0]!r} has no {{topic}} placeholder")
        return templates

    @model_validator(mode="after")
    def _some(self):
        if not self.files and not (self.topics and self.templates):
            raise ValueError("give topics and templates, or files of prompts, or both")
        return self


class CandidateSettings(StrictModel):
    """Answers sampled per instruction: `samples` at each temperature, nucleus `top_p`."""

    temperatures: list[float] = Field([0.3, 0.7, 1.0], min_length=1)
    top_p: float = Field(0.9, gt=0, le=1)
    samples: int = Field(1, ge=1)
    max_new_tokens: int | None = Field(None, ge=1)
    """Default: the generator's max_new_tokens."""
    trim: Literal["none", "sentence"] = "none"
    """sentence: cut each answer back to its last complete sentence, so an answer that max_new_tokens stopped mid-
    sentence keeps what it finished (and trains the model to stop there) instead of failing a format scorer; an
    answer without a complete sentence stays as it is."""


class FilterSettings(StrictModel):
    """What is kept for SFT and which score gaps become preference pairs."""

    min_score: float | None = None
    """Candidates scoring below this are dropped."""
    top_percent: float = Field(100.0, gt=0, le=100)
    """Keep only the best this-many percent of the remaining candidates."""
    per_topic: int | None = Field(None, ge=1)
    """Topic-balanced sampling: at most this many SFT rows per topic."""
    pair_margin: float = Field(0.1, ge=0)
    """A pair is (best, worst) of one instruction's candidates when their scores differ by at least this."""


class SynthSettings(StrictModel):
    """What a synthetic-data run generates, scores and keeps (`SynthConfig` without the output)."""

    generator: GeneratorSettings
    instructions: InstructionSettings
    candidates: CandidateSettings = CandidateSettings()
    scorers: list[ScorerSpec] = Field(default_factory=lambda: [ScorerSpec(name="length"),
                                                               ScorerSpec(name="repetition")], min_length=1)
    filter: FilterSettings = FilterSettings()
    seed: int = 0


class SynthConfig(SynthSettings):
    """A synthetic-data run. Writes `sft.jsonl` (`{"messages"}`) and `pairs.jsonl` (`{"prompt", "chosen",
    "rejected"}`, TRL conversational) to `output`, each row with `provenance` (generator, temperature, scores)."""

    output: Path


def _batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def make_instructions(cfg: SynthConfig, gen, work: Path) -> tuple[list[dict], dict]:
    """Generated (resumably) and file instructions, near-duplicates removed; returns rows and counts."""
    from shipit.data.filters import near_duplicates
    from shipit.data.progress import ProgressLog, write_jsonl
    from shipit.data.sources import read_prompts

    ins = cfg.instructions
    log = ProgressLog(work / "instructions.raw.jsonl")
    jobs = [(f"{t}|{k}|{topic}", topic, tmpl.format(topic=topic))
            for t, tmpl in enumerate(ins.templates) for topic in ins.topics for k in range(ins.samples_per_template)]
    todo = [j for j in jobs if j[0] not in log]
    for batch in _batches(todo, cfg.generator.batch_size):
        texts = gen.generate([j[2] for j in batch], temperature=ins.temperature, top_p=cfg.candidates.top_p,
                             max_new_tokens=ins.max_new_tokens, seed=cfg.seed + len(log.done))
        log.commit_many([j[0] for j in batch], [
            {"key": j[0], "prompt": text, "topic": j[1], "provenance": {"generator": gen.describe(), "request": j[2],
                                                                     "temperature": ins.temperature}}
            for j, text in zip(batch, texts)])
    order = {j[0]: i for i, j in enumerate(jobs)}
    generated = sorted((r for r in log.rows() if r["prompt"].strip()), key=lambda r: order[r["key"]])
    rows = [{"key": f"file{s}.{i}|{r['topic']}", **r, "provenance": {"source": str(src.path)}}
            for s, src in enumerate(ins.files) for i, r in enumerate(read_prompts(src))] + generated
    for i, r in enumerate(rows):
        r["id"] = i
    dropped = set(near_duplicates([r["prompt"] for r in rows], ins.dedup_threshold)) if ins.dedup_threshold else set()
    kept = [r for i, r in enumerate(rows) if i not in dropped]
    write_jsonl(work / "instructions.jsonl", kept)
    return kept, {"instructions_generated": len(generated), "instructions_from_files": len(rows) - len(generated),
                  "near_duplicates_removed": len(dropped), "instructions": len(kept),
                  "instructions_resumed": log.resumed}


# A sentence ends at . ! or ? (closing quotes and brackets included) before whitespace or the end, but not at a
# numbered list's marker ("\n2.") or a lone initial ("J. Smith").
SENTENCE_END = re.compile(r"(?<!\b\d)(?<!\b[A-Z])[.!?][\"')\]]*(?=\s|$)")


def trim_to_sentence(text: str) -> str:
    """`text` up to the end of its last complete sentence (unchanged when it ends one or has none)."""
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    return text[:ends[-1]] if ends else text


def make_candidates(cfg: SynthConfig, gen, scoring, instructions: list[dict], work: Path) -> tuple[list[dict], int]:
    """Candidates at every temperature for each instruction, scored; appended per batch, resumable."""
    from shipit.data.progress import ProgressLog

    c = cfg.candidates
    log = ProgressLog(work / "candidates.jsonl")
    todo = [r for r in instructions if r["key"] not in log]
    for batch in _batches(todo, cfg.generator.batch_size):
        rows = []
        for t in c.temperatures:
            for s in range(c.samples):
                answers = gen.generate([r["prompt"] for r in batch], temperature=t, top_p=c.top_p,
                                       max_new_tokens=c.max_new_tokens, seed=cfg.seed + 1000 * s + batch[0]["id"])
                if c.trim == "sentence":
                    answers = [trim_to_sentence(a) for a in answers]
                scores = scoring([r["prompt"] for r in batch], answers)
                rows += [{"key": r["key"], "prompt": r["prompt"], "topic": r["topic"], "completion": a,
                          "score": sc["score"], "provenance": {"generator": gen.describe(), "temperature": t,
                                                               "top_p": c.top_p, "sample": s, "scores": sc["scores"]}}
                         for r, a, sc in zip(batch, answers, scores)]
        log.commit_many([r["key"] for r in batch], rows)
    return log.rows(), log.resumed


def select(cfg: SynthConfig, candidates: list[dict]) -> tuple[list[dict], list[dict], dict]:
    """SFT rows (best kept candidate per instruction, balanced by topic) and preference pairs."""
    from shipit.data.filters import above_threshold, balance, best_worst_pairs, top_percent

    f = cfg.filter
    by_prompt: dict[str, list[dict]] = defaultdict(list)
    for r in candidates:
        by_prompt[r["key"]].append(r)
    passing = above_threshold(candidates, f.min_score)
    kept = top_percent(passing, f.top_percent)
    best: dict[str, dict] = {}
    for r in kept:
        if r["key"] not in best or r["score"] > best[r["key"]]["score"]:
            best[r["key"]] = r
    chosen = balance(list(best.values()), f.per_topic, seed=cfg.seed)
    sft = [{"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["completion"]}],
            "topic": r["topic"], "provenance": {**r["provenance"], "score": r["score"]}} for r in chosen]
    pairs = []
    for key, group in by_prompt.items():
        pair = best_worst_pairs(group, f.pair_margin)
        if pair:
            good, bad = pair
            pairs.append({"prompt": [{"role": "user", "content": good["prompt"]}],
                          "chosen": [{"role": "assistant", "content": good["completion"]}],
                          "rejected": [{"role": "assistant", "content": bad["completion"]}],
                          "topic": good["topic"],
                          "provenance": {"chosen": {**good["provenance"], "score": good["score"]},
                                         "rejected": {**bad["provenance"], "score": bad["score"]}}})
    stats = {"candidates": len(candidates), "below_threshold": len(candidates) - len(passing),
             "below_top_percent": len(passing) - len(kept), "sft_rows": len(sft), "pairs": len(pairs),
             "topics": len({r["topic"] for r in sft})}
    return sft, pairs, stats


def run(cfg: SynthConfig, resume: bool = False) -> Path:
    """Generate, deduplicate, answer, score, filter and pair; write the outputs to `cfg.output`."""
    from shipit.data.generators import make_generator
    from shipit.data.progress import write_jsonl
    from shipit.data.scorers import Scoring
    from shipit.registry import stage_output

    inputs = {f"prompts{i}": s.path for i, s in enumerate(cfg.instructions.files)}
    if cfg.generator.model:
        inputs["generator"] = cfg.generator.model
    with stage_output(cfg.output, "data/synth", cfg, inputs, resume=resume, keep_on_error=True) as out:
        with make_generator(cfg.generator) as gen:
            scoring = Scoring(cfg.scorers, shared=(cfg.generator, gen))  # a self-judge shares the generator
            try:
                instructions, counts = make_instructions(cfg, gen, out.dir)
                candidates, resumed = make_candidates(cfg, gen, scoring, instructions, out.dir)
            finally:
                scoring.close()
        sft, pairs, stats = select(cfg, candidates)
        write_jsonl(out.dir / "sft.jsonl", sft)
        write_jsonl(out.dir / "pairs.jsonl", pairs)
        out.metrics.update({**counts, **stats, "candidates_resumed": resumed})
        out.metrics["mean_score_kept"] = round(sum(r["provenance"]["score"] for r in sft) / max(1, len(sft)), 4)
        out.extra["judge_unparsed"] = scoring.stats()
    return cfg.output
