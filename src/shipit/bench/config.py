"""The bench config: candidates, tasks, weights, gates, efficiency backends, judge, reward model, lm-eval."""

from __future__ import annotations

import operator
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from shipit.bench.tasks import EvalPart
from shipit.bench.tasks import tasks as known_tasks
from shipit.config import StrictModel
from shipit.conventions import Conventions

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
GATE = re.compile(r"^\s*(>=|<=|==|>|<)\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*$")
EFFICIENCY_METRICS = ("size_mb", "load_s", "latency_p50_ms", "latency_p95_ms", "throughput_tok_s", "peak_mem_mb")


class EfficiencySettings(StrictModel):
    """How speed and memory are measured: in process (transformers or ONNX Runtime), and optionally under vLLM."""

    prompts: int = Field(8, ge=1)
    """Held-out instruction prompts timed per candidate."""
    max_new_tokens: int = Field(16, ge=2)
    vllm: bool = False
    """Also start each servable candidate in vLLM and time it there (about 30 s per candidate on CPU)."""


class SampledSafety(StrictModel):
    """The safety task measured again with sampled decoding, as a server answers users: greedy refusal rates hold for
    greedy decoding only (the demo's safety specialist refused 56% of held-out harmful requests greedy and 1 of 16
    in its A/B experiment at temperature 0.8). Adds `refusal_rate_sampled` and `over_refusal_sampled` (the share of
    sampled answers that refuse), which gates may use; the task's score stays the greedy one."""

    temperature: float = Field(0.8, gt=0, le=2)
    """As the server samples (the experiment's `temperature`)."""
    top_p: float = Field(1.0, gt=0, le=1)
    samples: int = Field(1, ge=1, le=16)
    """Sampled answers per prompt."""
    max_new_tokens: int = Field(32, ge=4)
    seed: int = 0


class JudgeSettings(StrictModel):
    """An OpenAI-compatible endpoint that judges pairwise: candidate vs `baseline` on held-out prompts."""

    base_url: str
    model_name: str
    """The model name the endpoint serves (as in every other endpoint block)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the key ('unused' when it is not set)."""
    baseline: str
    """Name of the candidate every other candidate is compared with."""
    prompts: int = Field(16, ge=1)


class BenchConfig(StrictModel):
    """Candidates (name -> model directory) and what to measure; the winner passes every gate with the best score.

    Each task reports a `score` in [0, 1]; a candidate's score is the mean of its task scores weighted by `weights`
    (a task missing from `weights` has weight 1). `gates` map `task.metric` (or `efficiency.metric`) to a condition
    such as `">= 0.5"`; a candidate failing any gate cannot win, and the reasons are recorded.
    """

    models: dict[str, Path] = Field(min_length=1)
    tasks: list[str] = Field(default_factory=lambda: ["general_ppl", "domain_ppl", "domain_qa", "format", "safety"],
                             min_length=1)
    weights: dict[str, float] = {}
    gates: dict[str, str] = {}
    efficiency: EfficiencySettings = EfficiencySettings()
    reward_model: Path | None = None
    """A reward model directory; enables the `reward_score` task."""
    judge: JudgeSettings | None = None
    """Enables the `judge_winrate` task."""
    safety_sampled: SampledSafety | None = None
    """Also measure the `safety` task's refusals under sampled decoding (see SampledSafety)."""
    lm_eval: list[str] = []
    """lm-evaluation-harness tasks to run on every candidate (shipit ships shipit_domain_qa, shipit_general_ppl)."""
    lm_eval_limit: int | None = None
    eval_limit: int | None = Field(None, ge=1)
    """Score each candidate on at most this many held-out rows per data file (spread evenly over the file; the
    `safety`, `retention` and `domain_qa` tasks take it): a quick, noisier bench. The reports say so."""
    eval_part: EvalPart = None
    """'K/N': score every candidate on part K of N disjoint parts of each held-out file only (whole entities and
    activities, dealt out in turn): the rows a merge search with another part never saw, so the bench's number for
    the search's winner is not the search's own, chosen as the best of its trials. The reports say so."""
    data_dir: Path
    """Directory of the bench data files (`general_heldout.jsonl`, `harmful_prompts.jsonl`, ...; the demo world's
    are in src/shipit/demo/data, `${data}` in a recipe)."""
    conventions: Conventions = Conventions()
    """How answers are read: refusal phrasings and the answer format (defaults know real models' refusals)."""
    output: Path
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """dtype the candidates run in: 'auto' is bfloat16 on a CUDA GPU or CPU with native bf16, else float32
    ($SHIPIT_INFERENCE_DTYPE sets it when this is 'auto'). Quantized candidates run in it too (as vLLM serves them);
    ONNX ones run in ONNX Runtime in their own."""
    reuse: bool = True
    """Reuse a candidate's results from the bench last written to `output` when its model, the data and every setting
    that changes a number are unchanged (a rerun after one candidate changed benches that one only); false benches
    every candidate again."""
    on_no_winner: Literal["fail", "report"] = "fail"
    """When no candidate passes the gates: exit with an error (after writing the report), or only report it."""

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks):
        known = known_tasks()
        unknown = [t for t in tasks if t not in known]
        if unknown:
            raise ValueError(f"unknown task '{unknown[0]}'; allowed: {', '.join(known)}")
        return tasks

    @field_validator("gates")
    @classmethod
    def _gate_syntax(cls, gates):
        for key, cond in gates.items():
            if not GATE.match(cond):
                raise ValueError(f"gate '{key}': condition {cond!r} should look like '>= 0.5' (ops: {', '.join(OPS)})")
        return gates

    @model_validator(mode="after")
    def _references(self):
        extra = [k for k in self.weights if k not in self.tasks]
        if extra:
            raise ValueError(f"weights name task '{extra[0]}' which is not in tasks ({', '.join(self.tasks)})")
        for key in self.gates:
            group, _, metric = key.partition(".")
            if group == "efficiency" and metric in EFFICIENCY_METRICS or group in self.tasks and metric:
                continue
            raise ValueError(f"gate '{key}' must be 'TASK.METRIC' for a task in tasks, or 'efficiency.METRIC' "
                             f"({', '.join(EFFICIENCY_METRICS)})")
        if "reward_score" in self.tasks and self.reward_model is None:
            raise ValueError("task 'reward_score' needs reward_model")
        if self.safety_sampled and "safety" not in self.tasks:
            raise ValueError("safety_sampled measures the safety task again: add 'safety' to tasks")
        if "judge_winrate" in self.tasks and self.judge is None:
            raise ValueError("task 'judge_winrate' needs a judge block")
        if self.judge and self.judge.baseline not in self.models:
            raise ValueError(f"judge.baseline '{self.judge.baseline}' is not one of the models ({', '.join(self.models)})")
        return self


def rank(score: float | None) -> float:
    """A weighted score for sorting: a candidate without one ranks last."""
    return float("-inf") if score is None else score


def gate_failures(result: dict, gates: dict[str, str]) -> list[str]:
    """Human-readable reasons this candidate fails its gates (empty when it passes)."""
    reasons = []
    for key, cond in gates.items():
        group, _, metric = key.partition(".")
        op, threshold = GATE.match(cond).groups()
        if result.get(group, {}).get("is_baseline"):
            continue  # the judge's reference: a gate on the win rate against it does not apply to itself
        value = result.get(group, {}).get(metric)
        if value is None:
            reasons.append(f"{key} was not measured")
        elif not OPS[op](value, float(threshold)):
            reasons.append(f"{key} = {value:.4g}, needs {op} {threshold}")
    return reasons
