"""Quality scorers by name: heuristics (length, repetition, format), a reward model, and an LLM judge.

A scorer is built from its `ScorerSpec` and scores `(prompts, completions)` with one float in [0, 1] each.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Callable, Literal

from pydantic import Field, field_validator, model_validator

from shipit.config import StrictModel
from shipit.data.generators import GeneratorSettings

ScoreFn = Callable[[list[str], list[str]], list[float]]
DEFAULT_RUBRIC = ("Rate how helpful, correct, harmless and well formed the response is. "
                  "1 is useless or harmful, 10 is excellent.")


class ScorerSpec(StrictModel):
    """One scorer and its weight in the combined score (the weighted mean of all scorers)."""

    name: str
    """One of: length, repetition, format, reward_model, judge, refusal_policy."""
    weight: float = Field(1.0, gt=0)
    min_words: int = Field(3, ge=0)
    """length: fewer words than this scores words/min_words."""
    max_words: int = Field(80, ge=1)
    """length: more words than this scores max_words/words."""
    pattern: str = r"(?s).*[.!?]"
    """format: a regular expression the whole response must match."""
    path: Path | None = None
    """reward_model: a sequence-classification reward model directory (`shipit train reward`); refusal_policy: a
    JSONL file whose `prompt` rows must be refused (every other prompt must be answered)."""
    judge: GeneratorSettings | None = None
    """judge: the generator that judges (may differ from the one that answers)."""
    rubric: str = DEFAULT_RUBRIC
    verdict: Literal["text", "expected", "pmi"] = "text"
    """judge: 'text' parses the judge's written 'Score: N' (1-10); 'expected' asks for 1-9 and takes the mean score
    under the judge's probabilities of the nine digits as the verdict's first token (G-Eval: a graded score with
    less noise than one sampled digit), for backends that give log-probabilities (hf, vllm; else 'text'); 'pmi'
    asks nothing and ignores the rubric: the response's pointwise mutual information with the request under the
    judge model (log p(response | request) - log p(response | an empty request), per token), squashed by
    sigmoid(4 x), so an answer to this request scores high and a generic or off-topic one low (hf backend). On
    labelled answers SmolLM2-135M-Instruct's written verdict was at chance and its PMI right 92% of the time
    (benchmarks/bench_judge.py); PMI cannot tell a harmful answer from a refusal, which is the rules' job."""

    @field_validator("name")
    @classmethod
    def _known(cls, name):
        if name not in SCORERS:
            raise ValueError(f"unknown scorer '{name}'; allowed: {', '.join(SCORERS)}")
        return name

    @field_validator("pattern")
    @classmethod
    def _regex(cls, pattern):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return pattern

    @model_validator(mode="after")
    def _needs(self):
        if self.name == "reward_model" and self.path is None:
            raise ValueError("scorer 'reward_model' needs path (a reward model directory)")
        if self.name == "refusal_policy" and self.path is None:
            raise ValueError("scorer 'refusal_policy' needs path (a JSONL file of prompts that must be refused)")
        if self.name == "judge" and self.judge is None:
            raise ValueError("scorer 'judge' needs a judge block (a generator)")
        if problem := verdict_problem(self.verdict, self.judge):
            raise ValueError(problem)
        return self


def verdict_problem(verdict: str, judge: GeneratorSettings | None) -> str | None:
    """Why `judge` cannot give `verdict`, or None."""
    if verdict == "pmi" and judge is not None and judge.backend != "hf":
        return f"verdict 'pmi' scores text in process: it needs judge backend 'hf', not '{judge.backend}'"
    return None


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def length_score(spec: ScorerSpec) -> ScoreFn:
    """1 inside [min_words, max_words], falling off proportionally outside it."""
    def score(prompts, completions):
        out = []
        for c in completions:
            n = len(_words(c))
            out.append(1.0 if spec.min_words <= n <= spec.max_words
                       else n / spec.min_words if n < spec.min_words else spec.max_words / n)
        return out
    return score


def repetition_score(spec: ScorerSpec) -> ScoreFn:
    """Share of distinct word trigrams (distinct words for short texts): 1 means nothing repeats."""
    def one(text):
        w = _words(text)
        if not w:
            return 0.0
        grams = [tuple(w[i:i + 3]) for i in range(len(w) - 2)] or [(x,) for x in w]
        return len(set(grams)) / len(grams)
    return lambda prompts, completions: [one(c) for c in completions]


def format_score(spec: ScorerSpec) -> ScoreFn:
    """1 when the stripped response matches `pattern` in full, else 0."""
    rx = re.compile(spec.pattern)
    return lambda prompts, completions: [1.0 if rx.fullmatch(c.strip()) else 0.0 for c in completions]


def refusal_policy_score(spec: ScorerSpec) -> ScoreFn:
    """1 when the response does what the policy asks of its prompt: a refusal (by the default conventions) for a
    prompt listed in `path`, a non-empty answer that is not a refusal for any other; else 0. As a quality gate it
    keeps a constitution's revisions only when they refuse what is harmful and help with what is not."""
    from shipit.config import read_jsonl
    from shipit.conventions import is_refusal

    refuse = {" ".join(r["prompt"].split()) for r in read_jsonl(spec.path, ["prompt"], what="refusal_policy prompts")}

    def score(prompts, completions):
        return [1.0 if (" ".join(p.split()) in refuse) == is_refusal(c) and c.strip() else 0.0
                for p, c in zip(prompts, completions)]
    return score


def reward_model_score(spec: ScorerSpec) -> ScoreFn:
    """The reward model's logit squashed by a sigmoid into [0, 1]."""
    from shipit.models.reward import reward_model_scorer

    rm = reward_model_scorer(spec.path)
    return lambda prompts, completions: [1 / (1 + math.exp(-x)) for x in rm(prompts, completions)]


SCORE_RE = re.compile(r"score\s*[:=]?\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
# A bare leading number counts only as a whole verdict ("7", "7/10", "7."), not as the start of other text: a small
# instruct model asked to grade "What is 2+2?" answered "2+2 = 4", which read as a score of 2.
LONE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*10)?\s*(?:[.!]\s*)?(?:$|\n)")


def parse_score(text: str, low: float = 1, high: float = 10) -> float | None:
    """A judge's 'Score: N' (or a lone number, 'N' or 'N/10') mapped from [low, high] onto [0, 1]; None if absent."""
    m = SCORE_RE.search(text) or LONE_RE.match(text)
    if not m:
        return None
    return min(1.0, max(0.0, (float(m.group(1)) - low) / (high - low)))


def judge_prompt(rubric: str, prompt: str, completion: str, top: int = 10) -> str:
    """The LLM-as-judge request for one response, scored 1 to `top`."""
    return (f"You are grading an assistant's response.\nRubric: {rubric}\n\nUser request:\n{prompt}\n\n"
            f"Response:\n{completion}\n\nReply with one line of the form 'Score: N' where N is a whole number "
            f"from 1 to {top}.")


JUDGE_PREFILL = "Score:"
DIGITS = tuple(str(d) for d in range(1, 10))


def expected_score(logprobs: dict[str, float]) -> float:
    """The mean of the scores 1-9 under the judge's renormalised probabilities of the digits, onto [0, 1]."""
    top = max(logprobs.values())
    weights = {d: math.exp(lp - top) for d, lp in logprobs.items()}
    mean = sum(int(d) * w for d, w in weights.items()) / sum(weights.values())
    return (mean - 1) / 8


PMI_SLOPE = 4.0
"""The pmi verdict's sigmoid slope: +0.25 nats per token of mutual information scores 0.73, -0.25 scores 0.27."""


def pmi_values(judge, prompts: list[str], completions: list[str]) -> list[float]:
    """Each completion's per-token pointwise mutual information with its prompt under the judge, in nats per token:
    log p(completion | prompt) - log p(completion), over its tokens."""
    cond = judge.completion_logprobs(prompts, completions)
    alone = judge.completion_logprobs([""] * len(completions), completions)
    return [(lp - lp0) / max(n, 1) for (lp, n), (lp0, _) in zip(cond, alone)]


def pmi_score(pmi: float) -> float:
    """A PMI in nats per token onto (0, 1) by a sigmoid of slope PMI_SLOPE."""
    return 1 / (1 + math.exp(-PMI_SLOPE * pmi))


def pmi_scores(judge, prompts: list[str], completions: list[str]) -> list[float]:
    """`pmi_values` onto (0, 1)."""
    return [pmi_score(v) for v in pmi_values(judge, prompts, completions)]


def judge_score(spec: ScorerSpec, judge=None) -> ScoreFn:
    """A model judge's score in [0, 1]: its written 1-10 verdict on the rubric parsed (an unparsable one scores 0),
    the probability-weighted mean of 1-9 (`verdict: expected`) or the response's PMI with the request (`pmi`).
    `judge`, when given, is an already running generator for `spec.judge` (shared, so not closed here)."""
    from shipit.data.generators import make_generator

    own = judge is None
    judge = make_generator(spec.judge) if own else judge
    expected = spec.verdict == "expected"

    def score(prompts, completions):
        if spec.verdict == "pmi":
            score.raw = pmi_values(judge, prompts, completions)
            return [pmi_score(v) for v in score.raw]
        top = 9 if expected else 10
        asks = [judge_prompt(spec.rubric, p, c, top) for p, c in zip(prompts, completions)]
        if judge.can_prefill:
            # The verdict starts as "Score:": SmolLM2-135M-Instruct asked plainly answers the graded question
            # instead ("2+2 = 4"); prefilled, it gives a number (" 4", " 10 is very helpful."), and "a whole
            # number" keeps it from copying the letter N.
            asks = [[{"role": "user", "content": a}, {"role": "assistant", "content": JUDGE_PREFILL}] for a in asks]
        if expected:
            # "Score: " ends in the space, so the next token is the digit itself (SmolLM2 spells " 7" as " ", "7").
            ready = [a[:-1] + [{"role": "assistant", "content": JUDGE_PREFILL + " "}] for a in asks] \
                if judge.can_prefill else asks
            logprobs = judge.choice_logprobs(ready, DIGITS)
            if logprobs is not None:
                score.raw = [expected_score(lp) for lp in logprobs]
                return score.raw
        verdicts = judge.generate(asks, temperature=0.0, max_new_tokens=16)
        if judge.can_prefill:
            verdicts = [f"{JUDGE_PREFILL} {v}" for v in verdicts]
        parsed = [parse_score(v, high=top) for v in verdicts]
        score.unparsed += sum(p is None for p in parsed)
        score.raw = [0.0 if p is None else p for p in parsed]
        return score.raw

    score.unparsed = 0
    score.raw = []  # the last call's verdicts on the judge's own scale: PMI in nats per token, else the score
    score.close = judge.close if own else (lambda: None)
    return score


SCORERS: dict[str, Callable[[ScorerSpec], ScoreFn]] = {
    "length": length_score,
    "repetition": repetition_score,
    "format": format_score,
    "reward_model": reward_model_score,
    "judge": judge_score,
    "refusal_policy": refusal_policy_score,
}


class Scoring:
    """Every configured scorer, combined by weight; `close()` releases judges. A judge configured exactly like
    `shared`'s settings uses that running generator instead of loading the model (or starting a server) again."""

    def __init__(self, specs: list[ScorerSpec], shared: tuple | None = None):
        self.specs = specs
        self.fns = [judge_score(s, shared[1]) if shared and s.name == "judge" and s.judge == shared[0]
                    else SCORERS[s.name](s) for s in specs]

    def __call__(self, prompts: list[str], completions: list[str]) -> list[dict]:
        """Per row: {'score': weighted mean, 'scores': {scorer: value}}."""
        per = {s.name: fn(prompts, completions) for s, fn in zip(self.specs, self.fns)}
        total = sum(s.weight for s in self.specs)
        out = []
        for i in range(len(completions)):
            scores = {name: round(v[i], 4) for name, v in per.items()}
            combined = sum(s.weight * per[s.name][i] for s in self.specs) / total
            out.append({"score": round(combined, 4), "scores": scores})
        return out

    def stats(self) -> dict:
        """Judge verdicts that could not be parsed, per scorer."""
        return {s.name: fn.unparsed for s, fn in zip(self.specs, self.fns) if hasattr(fn, "unparsed")}

    def close(self) -> None:
        for fn in self.fns:
            getattr(fn, "close", lambda: None)()
