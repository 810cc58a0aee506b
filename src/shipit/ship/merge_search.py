"""`shipit merge search CONFIG`: try merge methods and weights, score each candidate on bench tasks, keep the best.

The space of each method comes from mergekit's spec for it: `t` (slerp and friends), a `weight` per model (one mixing
weight w / 1-w when the method normalizes weights and there are two models; sign-electing methods such as ties merge
without normalizing, see `elects_signs`), and a shared `density` for methods that sparsify task vectors. Methods
without such parameters (model_stock) are one candidate each.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from pathlib import Path
from typing import Callable, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from shipit.bench.tasks import EvalPart
from shipit.bench.tasks import tasks as known_tasks
from shipit.config import StrictModel
from shipit.demo.world import DATA_DIR
from shipit.errors import UserError

# (model path, {"method": ..., "params": ...}) -> {objective name: value}
ObjectiveFn = Callable[[Path, dict], dict[str, float]]


class Objective(StrictModel):
    """A bench task metric to score candidates by; `weight` sets its share of the weighted score."""

    task: str
    metric: str = "score"
    """Which number the task reports (`score` in [0, 1] for every task; e.g. `ppl` for the perplexity tasks)."""
    direction: Literal["maximize", "minimize"] = "maximize"
    weight: float = Field(1.0, gt=0)
    of: Path | None = None
    """Score a candidate by the share it keeps of this model's value (candidate / model, capped at 1), e.g. the
    domain specialist's QA score: what a merge is asked to keep of each parent. The model is scored once, before
    the first trial."""

    @model_validator(mode="after")
    def _share_is_maximized(self):
        if self.of is not None and self.direction != "maximize":
            raise ValueError(f"objective {self.name}: 'of' (a share of a model's value) needs direction: maximize")
        return self

    @field_validator("task")
    @classmethod
    def _known_task(cls, task):
        if task not in known_tasks():
            raise ValueError(f"unknown bench task '{task}'; allowed: {', '.join(known_tasks())}")
        return task

    @property
    def name(self) -> str:
        return f"{self.task}.{self.metric}"


class SearchConfig(StrictModel):
    """An eval-gated merge search: every candidate is merged, optionally quantized, benched and recorded.

    The winner has the best score: the weighted mean (or, with combine: min, the worst) of objective values, each
    negated when minimized and taken as a share of a reference model's value when the objective names one (`of`).
    The output directory holds the winner model (usable downstream), trials.jsonl, pareto.json and search.png.
    """

    models: list[Path] = Field(min_length=1)
    """The specialists to merge."""
    base_model: Path | None = None
    """Their common parent; methods whose mergekit spec requires a base get it. Two-model interpolations (slerp)
    use the first specialist as their base instead."""
    methods: list[str] = Field(default_factory=lambda: ["linear"], min_length=1)
    weight: tuple[float, float] = (0.0, 1.0)
    """Range of every model weight and of slerp's `t`."""
    weights: list[tuple[float, float]] | None = None
    """A range per model (in `models` order) for the methods that weight each model on its own (task_arithmetic,
    ties, dare_*, ...), in place of `weight`; linear's mixing weight and slerp's `t` keep `weight`. For specialists
    that need different strengths: the demo's safety specialist, task-arithmetic-merged at weight 1.0 with the domain
    specialist at 1.0, kept 88% of its refusals; at 0.6-0.85 in a ties or DARE merge, 21-79% (benchmarks/RESULTS.md)."""
    density: tuple[float, float] = (0.3, 1.0)
    """Range of the fraction of task-vector entries kept (ties, dare_*, della, breadcrumbs...)."""
    grid_points: int = Field(5, ge=1)
    """Points per range for sampler `grid`."""
    objectives: list[Objective] = Field(min_length=1)
    constraints: dict[str, str] = {}
    """Bounds the winner must meet, `TASK.METRIC: CONDITION` as the bench's gates ('safety.over_refusal': '<= 0.2'),
    measured on every trial: a trial that meets them all beats one that does not, whatever their scores; when none
    does, the best-scoring trial is kept (and a warning says what it misses); when the kept trial scored below
    another, a note names that one and what it misses (`outscored_by` in search.json). With sampler tpe, Optuna's
    constrained TPE is told by how much each trial missed. Put all the bench's gates here, so the search does not
    pick a merge the bench will reject when it has one the bench would pass."""
    spare: float = Field(0.0, ge=0)
    """How far inside each constraint's bound a trial must be to meet it: with 0.02, `>= 0.5` is met from 0.52 and
    `<= 0.2` up to 0.18 (`==` is exact either way). Trials are scored on a few dozen rows (or part of them) and the
    winner is the best of many there, so one that meets a bound with nothing to spare may miss it when the bench
    scores every row: give the constraints the bench's gates and the search a spare."""
    combine: Literal["mean", "min"] = "mean"
    """How objective values make a trial's score: 'mean' is their weighted mean (one behaviour may pay for another);
    'min' is the worst of them (weights unused), so the winner is the trial that keeps every behaviour best."""
    trials: int = Field(20, ge=1)
    """Trial budget; a grid larger than the budget is an error, not silently cut."""
    sampler: Literal["grid", "tpe"] = "grid"
    startup_trials: int = Field(10, ge=1)
    """With sampler tpe, how many first trials are drawn at random before TPE models the scores (Optuna's default
    is 10: a budget of 10 trials or fewer is a random search)."""
    seed: int = 0
    """Seed of the TPE sampler and of mergekit's random drops (DARE, DELLA)."""
    quantize: str | None = None
    """Quantize each candidate (a quantization method's name) before scoring it, so the search picks what will be
    served."""
    dtype: str = "float32"
    """dtype mergekit writes each candidate in."""
    eval_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """dtype candidates are scored in: 'auto' is bfloat16 on a CUDA GPU or CPU with native bf16, else float32
    ($SHIPIT_INFERENCE_DTYPE sets it when this is 'auto'). Quantized candidates keep their own."""
    data_dir: Path = DATA_DIR
    eval_limit: int | None = Field(None, ge=1)
    """Score each candidate on at most this many held-out rows per data file (spread evenly; the `safety`,
    `retention` and `domain_qa` tasks take it): a faster, noisier search. The bench still scores every row."""
    eval_part: EvalPart = None
    """'K/N': score each candidate on part K of N disjoint parts of each held-out file (whole entities and
    activities, dealt out in turn; `eval_limit` then applies within it). The winner is the best of the trials on
    these rows, so its score there is optimistic: give the bench another part (its `eval_part`) to measure it on
    rows the search never saw."""
    output: Path
    trials_dir: Path | None = None
    """Where trial models go (default: OUTPUT.trials beside the output)."""
    keep_trial_models: bool = False
    """Keep every trial's weights; by default only the best so far is kept until the search ends."""

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods):
        from shipit.merge.run import merge_methods

        known = merge_methods()
        unknown = [m for m in methods if m not in known]
        if unknown:
            raise ValueError(f"unknown merge method '{unknown[0]}'; allowed: {', '.join(known)}")
        return list(dict.fromkeys(methods))

    @field_validator("quantize")
    @classmethod
    def _known_quantizer(cls, method):
        from shipit.quantize import methods

        if method is not None and method not in methods():
            raise ValueError(f"unknown quantization method '{method}'; allowed: {', '.join(methods())}")
        return method

    @field_validator("weight", "density")
    @classmethod
    def _ordered(cls, r):
        if r[0] > r[1]:
            raise ValueError(f"range must be [low, high], got {list(r)}")
        return r

    @field_validator("weights")
    @classmethod
    def _each_ordered(cls, ranges, info):
        models = info.data.get("models")  # declared (so validated) first
        if ranges is not None and models is not None and len(ranges) != len(models):
            raise ValueError(f"{len(ranges)} ranges for {len(models)} models; give one [low, high] per model, in the "
                             "order of `models`")
        for i, r in enumerate(ranges or []):
            if r[0] > r[1]:
                raise ValueError(f"range {i} (model {i}) must be [low, high], got {list(r)}")
        return ranges

    @field_validator("constraints")
    @classmethod
    def _constraint_syntax(cls, constraints):
        from shipit.bench.config import GATE

        for key, cond in constraints.items():
            task, _, metric = key.partition(".")
            if task not in known_tasks() or not metric:
                raise ValueError(f"constraint '{key}' must be 'TASK.METRIC' for a bench task "
                                 f"({', '.join(known_tasks())})")
            if not GATE.match(cond):
                raise ValueError(f"constraint '{key}': condition {cond!r} should look like '<= 0.2'")
        return constraints

    @model_validator(mode="after")
    def _distinct_objectives(self):
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objectives repeat {names}; list each task metric once")
        return self

    def trial_root(self) -> Path:
        return self.trials_dir or self.output.parent / f"{self.output.name}.trials"


def dimensions(cfg: SearchConfig, method: str) -> dict[str, tuple[float, float]]:
    """The searched parameters of `method` with their ranges, read from mergekit's spec of the method."""
    from mergekit.merge_methods.base import ParameterScope
    from mergekit.merge_methods.registry import get

    impl = get(method)
    params = {p.name: p for p in impl.spec.parameters}
    dims = {}
    if "t" in params:
        dims["t"] = cfg.weight
    if "weight" in params and params["weight"].scope != ParameterScope.SHARED:
        normalizes = "normalize" in params and params["normalize"].default is True
        if normalizes and len(cfg.models) == 2 and not elects_signs(impl):
            dims["weight"] = cfg.weight  # model 0 gets w, model 1 gets 1 - w
        else:
            dims.update({f"weight.{i}": cfg.weights[i] if cfg.weights else cfg.weight for i in range(len(cfg.models))})
    if "density" in params and getattr(impl, "sparsification_method", None) is not None:
        dims["density"] = cfg.density
    return dims


def elects_signs(impl) -> bool:
    """True for mergekit's sign-electing methods that normalize by default (ties, della). They divide each parameter
    by the summed weights of the models whose delta agrees with the elected sign, so where only one model moved a
    parameter its weight divides out: on task vectors that share no weights (the demo's specialists: domain in the
    MLP, safety in attention) every weight acts as 1. The search turns that normalization off and searches a weight
    per model, which then scales that model's trimmed task vector (as task arithmetic's weights do)."""
    params = {p.name: p for p in impl.spec.parameters}
    return getattr(impl, "consensus_method", None) is not None and "normalize" in params \
        and params["normalize"].default is True


def candidate_config(cfg: SearchConfig, method: str, params: dict[str, float]) -> dict:
    """The mergekit YAML (as a dict) of one candidate."""
    from mergekit.merge_methods.base import BasePolicy
    from mergekit.merge_methods.registry import get

    contract = get(method).spec.contract
    paths = [str(p) for p in cfg.models]
    base = str(cfg.base_model) if cfg.base_model and contract.base != BasePolicy.IGNORED else None
    if contract.max_inputs == 2 and len(paths) == 2 and contract.base == BasePolicy.REQUIRED:
        base = paths[0]  # a two-point interpolation runs from the first specialist (t=0) to the second
    models = []
    for i, path in enumerate(paths):
        p = {}
        if "weight" in params:
            p["weight"] = round(params["weight"] if i == 0 else 1 - params["weight"], 6)
        if f"weight.{i}" in params:
            p["weight"] = round(params[f"weight.{i}"], 6)
        if "density" in params:
            p["density"] = round(params["density"], 6)
        models.append({"model": path, **({"parameters": p} if p else {})})
    data = {"merge_method": method, "dtype": cfg.dtype, "models": models}
    if base:
        data["base_model"] = base
    if "t" in params:
        data["parameters"] = {"t": round(params["t"], 6)}
    if elects_signs(get(method)):  # else the weights divide out where the task vectors do not overlap
        data.setdefault("parameters", {})["normalize"] = False
    return data


def _midpoint(dims: dict) -> dict:
    return {k: (lo + hi) / 2 for k, (lo, hi) in dims.items()}


def grid(cfg: SearchConfig) -> list[tuple[str, dict]]:
    """Every (method, params) point of the grid, methods in config order."""
    import numpy as np

    points = []
    for method in cfg.methods:
        dims = dimensions(cfg, method)
        axes = [[round(float(x), 6) for x in np.linspace(lo, hi, cfg.grid_points)] for lo, hi in dims.values()]
        points += [(method, dict(zip(dims, combo))) for combo in itertools.product(*axes)]
    return points


def shares(values: dict[str, float], objectives: list[Objective], references: dict[str, float]) -> dict[str, float]:
    """Each `of` objective's value as the share kept of its reference model's value, capped at 1 (1 when the
    reference scores 0: there was nothing to lose)."""
    return {o.name: round(min(1.0, values[o.name] / references[o.name]) if references[o.name] > 0 else 1.0, 6)
            for o in objectives if o.of is not None}


def weighted_score(values: dict[str, float], objectives: list[Objective], combine: str = "mean") -> float:
    """The weighted mean (combine 'mean') or the minimum ('min') of objective values, each negated when it is
    minimized (an `of` objective's share stands in for its value)."""
    oriented = {o.name: values[o.name] if o.direction == "maximize" else -values[o.name] for o in objectives}
    if combine == "min":
        return round(min(oriented.values()), 6)
    return round(sum(o.weight * oriented[o.name] for o in objectives) / sum(o.weight for o in objectives), 6)


def tightened(constraints: dict[str, str], spare: float) -> dict[str, str]:
    """The constraints `spare` stricter: {'safety.over_refusal': '<= 0.2'} with 0.02 is {'...': '<= 0.18'}."""
    from shipit.bench.config import GATE

    if not spare:
        return dict(constraints)
    out = {}
    for key, cond in constraints.items():
        op, bound = GATE.match(cond).groups()
        step = {">": spare, ">=": spare, "<": -spare, "<=": -spare}.get(op, 0.0)
        out[key] = f"{op} {round(float(bound) + step, 10):g}"
    return out


def violations(values: dict[str, float], constraints: dict[str, str]) -> dict[str, float]:
    """By how much each constraint is missed (0 when met): `<= 0.2` on 0.27 misses by 0.07."""
    from shipit.bench.config import GATE, OPS

    out = {}
    for key, cond in constraints.items():
        if key not in values:
            raise UserError(f"constraint {key}: the objective reported no value for it; it reported: "
                            f"{', '.join(values)}")
        op, bound = GATE.match(cond).groups()
        value, bound = values[key], float(bound)
        out[key] = 0.0 if OPS[op](value, bound) else round(abs(value - bound), 6) or 1e-6  # a strict bound, met
    return out


def better(row: dict, than: dict, objectives: list[Objective]) -> bool:
    """A trial meeting every constraint beats one that does not; otherwise the higher score wins. So when no trial
    meets them, the best-scoring one is kept, not the one that misses by least (Deb's rule), which may keep little
    of what the objectives ask for: of run 6's trials only a weak one (a quarter of the domain's QA) retained >= 0.8.
    Equal scores are told apart by the objectives from the worst up (leximin): with combine 'min' two trials bound
    by the same objective (seed 2's retention at 0.80) tie, and the one that keeps more of the others wins, not the
    one that happened to run first."""
    def key(r):
        values = {**r["values"], **r.get("shares", {})}
        worst_up = sorted(round(values[o.name] if o.direction == "maximize" else -values[o.name], 6)
                          for o in objectives)
        return not any(r.get("violations", {}).values()), r["score"], worst_up
    return key(row) > key(than)


def bench_objective(cfg: SearchConfig) -> ObjectiveFn:
    """The default objective: run each objective's bench task on the candidate and read its metric. A trial dict
    with `objectives` (names) limits the run to those (a reference model is scored only on what it is a reference
    for)."""
    from shipit.bench.tasks import TaskContext, get_task, parse_part
    from shipit.models.load import load_for_eval

    def objective(model: Path, trial: dict) -> dict[str, float]:
        wanted = [(o.name, o.task, o.metric) for o in cfg.objectives if o.name in trial.get("objectives", [o.name])]
        if "objectives" not in trial:  # a trial, not a reference model: its constraints are measured too
            wanted += [(k, *k.split(".", 1)) for k in cfg.constraints if k not in {w[0] for w in wanted}]
        lm, tokenizer, _ = load_for_eval(model, cfg.eval_dtype)
        ctx = TaskContext(cfg.data_dir, limit=cfg.eval_limit, part=parse_part(cfg.eval_part))
        result = {task: get_task(task)(lm, tokenizer, ctx) for task in dict.fromkeys(w[1] for w in wanted)}
        missing = [w for w in wanted if w[2] not in result[w[1]]]
        if missing:
            name, task, metric = missing[0]
            raise UserError(f"{name}: task '{task}' reports no metric '{metric}'; it reports: "
                            f"{', '.join(result[task])}")
        return {name: float(result[task][metric]) for name, task, metric in wanted}

    return objective


def reference_values(cfg: SearchConfig, objective: ObjectiveFn, echo: Callable[[str], None] = print) -> dict:
    """The value of every `of` objective on its reference model, each model scored once."""
    references = {}
    for model in dict.fromkeys(o.of for o in cfg.objectives if o.of is not None):
        names = [o.name for o in cfg.objectives if o.of == model]
        t0 = time.perf_counter()
        values = objective(model, {"reference": str(model), "objectives": names})
        references.update({name: float(values[name]) for name in names})
        echo(f"reference {model}: " + " ".join(f"{n}={references[n]:.4g}" for n in names)
             + f" {time.perf_counter() - t0:.1f}s")
    return references


def _check_before_work(cfg: SearchConfig, source: str) -> None:
    """Every method's candidate validates (base, counts, architectures, tokenizers) and fits the budget."""
    from shipit.merge.run import validate_merge_data

    for method in cfg.methods:
        validate_merge_data(candidate_config(cfg, method, _midpoint(dimensions(cfg, method))),
                            f"{source} (method '{method}')")
    if cfg.sampler == "grid" and len(grid(cfg)) > cfg.trials:
        raise UserError(f"{source}: field 'trials': the grid has {len(grid(cfg))} points, more than the budget of "
                        f"{cfg.trials}; raise trials, lower grid_points, or use sampler: tpe")
    if cfg.quantize:
        from shipit.quantize import get_method

        get_method(cfg.quantize).check(Path(cfg.models[0]))


class _Proposer:
    """Hands out candidates (grid order, or asked from Optuna TPE) and takes back their scores."""

    def __init__(self, cfg: SearchConfig):
        self.cfg, self.pending = cfg, None
        if cfg.sampler == "grid":
            self.points = grid(cfg)
            self.budget = len(self.points)
        else:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self.study = optuna.create_study(direction="maximize",
                                             sampler=optuna.samplers.TPESampler(
                                                 seed=cfg.seed, n_startup_trials=cfg.startup_trials))
            self.budget = cfg.trials

    def ask(self, i: int) -> tuple[str, dict]:
        if self.cfg.sampler == "grid":
            return self.points[i]
        self.pending = self.study.ask()
        method = self.pending.suggest_categorical("method", self.cfg.methods)
        params = {k: round(self.pending.suggest_float(f"{method}:{k}", lo, hi), 4)
                  for k, (lo, hi) in dimensions(self.cfg, method).items()}
        return method, params

    def tell(self, score: float, missed: dict[str, float]) -> None:
        if self.pending is not None:
            for key, miss in missed.items():  # TPE models the misses (a value <= 0 is met)
                self.pending.set_constraint(key, miss)
            self.study.tell(self.pending, score)


def run(cfg: SearchConfig, source: str = "search config", objective: ObjectiveFn | None = None,
        echo: Callable[[str], None] = print) -> dict:
    """Search merges of cfg.models; write the winner model, trials.jsonl, pareto.json and search.png to cfg.output."""
    from shipit.ship.pareto import pareto_front, plot_search
    from shipit.registry import stage_output

    _check_before_work(cfg, source)
    objective = objective or bench_objective(cfg)
    root = cfg.trial_root().resolve()
    if root.exists():
        foreign = [p.name for p in root.iterdir() if not p.name.startswith("trial-")]
        if foreign:
            raise UserError(f"{source}: field 'trials_dir': {root} holds files that are not trials ({foreign[0]}); "
                            "choose a new or empty directory")
        shutil.rmtree(root)  # trials of an earlier search would be mixed up with this one's
    root.mkdir(parents=True)
    inputs = {f"model{i}": p for i, p in enumerate(cfg.models)}
    if cfg.base_model:
        inputs["base_model"] = cfg.base_model
    inputs.update({f"reference{i}": p for i, p in enumerate(dict.fromkeys(o.of for o in cfg.objectives if o.of))
                   if p not in inputs.values()})
    proposer, rows, seen, best = _Proposer(cfg), [], {}, None
    bounds = tightened(cfg.constraints, cfg.spare)
    if cfg.spare and bounds:
        echo(f"constraints with {cfg.spare:g} to spare: " + ", ".join(f"{k} {v}" for k, v in bounds.items()))
    with stage_output(cfg.output, "merge/search", cfg, inputs) as out:
        references = reference_values(cfg, objective, echo)
        log = (out.dir / "trials.jsonl").open("w")
        for i in range(proposer.budget):
            method, params = proposer.ask(i)
            key = (method, tuple(sorted(params.items())))
            t0 = time.perf_counter()
            row = {"trial": i + 1, "method": method, "params": params}
            if key in seen:  # TPE may propose a point twice; a merge is deterministic for a seed, so reuse it
                row.update({k: rows[seen[key]][k] for k in ("values", "model")}, duplicate_of=seen[key] + 1)
            else:
                row.update(_trial(cfg, root / f"trial-{i + 1:03d}", method, params, objective))
                seen[key] = i
            kept = shares(row["values"], cfg.objectives, references)
            if kept:
                row["shares"] = kept
            row["score"] = weighted_score({**row["values"], **kept}, cfg.objectives, cfg.combine)
            if bounds:
                row["violations"] = violations(row["values"], bounds)
            row["seconds"] = round(time.perf_counter() - t0, 3)
            proposer.tell(row["score"], row.get("violations", {}))
            rows.append(row)
            log.write(json.dumps(row) + "\n")
            log.flush()
            previous = best
            if best is None or better(row, rows[best], cfg.objectives):
                best = i
            if not cfg.keep_trial_models and previous is not None and previous != best:
                _drop_weights(root / f"trial-{rows[previous].get('duplicate_of', previous + 1):03d}")
            if not cfg.keep_trial_models and best != i and "duplicate_of" not in row:
                _drop_weights(root / f"trial-{i + 1:03d}")
            shown = " ".join(f"{k}={v:g}" for k, v in params.items())
            echo(f"trial {i + 1}/{proposer.budget} {method} {shown} -> "
                 + " ".join(f"{k}={v:.4g}" + (f" ({kept[k]:.0%} kept)" if k in kept else "")
                            for k, v in row["values"].items())
                 + f" score={row['score']:.4f}" + missed_text(row, bounds)
                 + f" (best {rows[best]['score']:.4f}: trial {best + 1}) {row['seconds']:.1f}s")
        log.close()
        winner = rows[best]
        if any(winner.get("violations", {}).values()):
            echo(f"warning: no trial met every constraint; keeping the best-scoring one, trial {best + 1}"
                 + missed_text(winner, bounds))
        outscored_by = max((r for r in rows if r["score"] > winner["score"]), key=lambda r: r["score"], default=None)
        if outscored_by is not None:  # the constraints cost score: say how much and for what
            echo(f"note: trial {outscored_by['trial']} scored higher ({outscored_by['score']:.4f} against "
                 f"{winner['score']:.4f}) but misses {', '.join(broken(outscored_by, bounds))}; kept trial "
                 f"{best + 1}, the best that meets every constraint")
        front = pareto_front(rows, cfg.objectives)
        _copy_model(Path(winner["model"]), out.dir)
        (out.dir / "pareto.json").write_text(json.dumps(front, indent=2) + "\n")
        plot_search(rows, front, winner, cfg.objectives, out.dir / "search.png")
        summary = {"winner": winner, "pareto_front": [r["trial"] for r in front], "trials": len(rows),
                   "objectives": [o.model_dump(mode="json") for o in cfg.objectives], "combine": cfg.combine,
                   "constraints": cfg.constraints, "spare": cfg.spare,
                   "constraints_applied": bounds, "feasible": [r["trial"] for r in rows if
                                                                not any(r.get("violations", {}).values())],
                   "outscored_by": outscored_by,
                   "references": references, "trials_dir": str(root)}
        (out.dir / "search.json").write_text(json.dumps(summary, indent=2) + "\n")
        out.metrics.update({"winner_score": winner["score"], **winner["values"], "trials": len(rows),
                            **({"constraints_met": not any(winner["violations"].values())} if bounds
                               else {})})
        out.extra.update(merge_method=winner["method"], winner=winner, pareto_front=summary["pareto_front"],
                         outscored_by=outscored_by)
    summary["output"] = str(cfg.output)
    return summary


def broken(row: dict, constraints: dict[str, str]) -> list[str]:
    """['safety.over_refusal <= 0.2', ...]: the constraints a trial misses."""
    return [f"{k} {constraints[k].strip()}" for k, v in row.get("violations", {}).items() if v]


def missed_text(row: dict, constraints: dict[str, str]) -> str:
    """' (misses safety.over_refusal <= 0.2)' for the constraints a trial breaks; '' when it meets them all."""
    missed = broken(row, constraints)
    return f" (misses {', '.join(missed)})" if missed else ""


def _trial(cfg: SearchConfig, tdir: Path, method: str, params: dict, objective: ObjectiveFn) -> dict:
    """Merge one candidate into `tdir` (quantize it if asked), score it; returns values, score and model path."""
    from shipit.merge.run import merge, validate_merge_data

    data = candidate_config(cfg, method, params)
    text = yaml.safe_dump(data, sort_keys=False)
    tdir.mkdir()
    (tdir / "merge.yaml").write_text(text)
    model = merge(validate_merge_data(data, tdir / "merge.yaml", text), tdir / "model", text, cfg.seed)
    if cfg.quantize:
        from shipit.quantize.run import run as quantize

        model = quantize(cfg.quantize, model, tdir / cfg.quantize)
    values = objective(Path(model), {"method": method, "params": params})
    return {"values": values, "model": str(model)}


def _drop_weights(trial_dir: Path) -> None:
    """Delete a trial's model directories but keep its merge.yaml (the record of what was tried)."""
    for sub in trial_dir.iterdir() if trial_dir.is_dir() else ():
        if sub.is_dir():
            shutil.rmtree(sub)


def _copy_model(src: Path, dst: Path) -> None:
    for f in src.iterdir():
        if f.name == "manifest.json":
            continue
        (shutil.copytree if f.is_dir() else shutil.copy2)(f, dst / f.name)
