"""`shipit ship RECIPE`: stages run as a DAG in order; a stage whose config and inputs are unchanged is skipped,
a stage that crashed resumes from its last checkpoint, and `${stage}` references wire outputs to inputs.

References inside any string of a stage's config: `${data}` is the recipe's `data` directory (default: the bundled
tiny world), `${NAME}` the output
directory of stage NAME (which makes NAME a dependency), `${NAME:winner}` / `${NAME:runner_up}` the model a bench
stage picked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

import shipit
from shipit.config import StrictModel, load_config
from shipit.errors import GateFailure, UserError

# Kinds whose libraries print pages of progress lines: their output goes to OUT/.ship/logs/NAME.log.
QUIET_KINDS = {"merge", "merge/search", "quantize", "bench"}
REF = re.compile(r"\$\{([A-Za-z0-9_.-]+)(?::(winner|runner_up))?\}")


class StageSpec(StrictModel):
    """One stage of a recipe: its kind and its config (the fields of that kind's config, `output` excluded)."""

    kind: str
    config: dict[str, Any] = {}

    @field_validator("kind")
    @classmethod
    def _known(cls, kind):
        from shipit.ship.kinds import KINDS

        if kind not in KINDS:
            raise ValueError(f"unknown stage kind '{kind}'; allowed: {', '.join(KINDS)}")
        return kind


class Recipe(StrictModel):
    """A whole chain from base model to A/B decision: stages by name, written under `out/NAME`."""

    name: str = "ship"
    out: Path
    data: Path | None = None
    """What `${data}` names: a data directory, relative to the recipe file; default: the bundled tiny world."""
    stages: dict[str, StageSpec] = Field(min_length=1)


def _refs(value) -> list[tuple[str, str | None]]:
    if isinstance(value, str):
        return REF.findall(value)
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def _substitute(value, lookup):
    if isinstance(value, str):
        if whole := REF.fullmatch(value):
            got = lookup(whole.group(1), whole.group(2))
            return None if got is None else str(got)  # None: a skipped stage, the field is left empty
        return REF.sub(lambda m: str(lookup(m.group(1), m.group(2))), value)
    if isinstance(value, dict):
        return {k: _substitute(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, lookup) for v in value]
    return value


@dataclass
class Plan:
    """The recipe in run order, with each stage's dependencies and cache key."""

    recipe: Recipe
    source: str
    order: list[str]
    deps: dict[str, list[str]]

    def out(self, name: str) -> Path:
        return Path(self.recipe.out).resolve() / name

    @property
    def data(self) -> Path:
        from shipit.demo.world import DATA_DIR

        d = self.recipe.data
        if d is None:
            return DATA_DIR
        return (d if d.is_absolute() else Path(self.source).resolve().parent / d).resolve()


def plan(recipe: Recipe, source: str) -> Plan:
    """Order the stages so every reference comes first; unknown references and cycles are errors."""
    deps = {}
    for name, spec in recipe.stages.items():
        found = []
        for ref, _ in _refs(spec.config):
            if ref == "data":
                continue
            if ref not in recipe.stages:
                raise UserError(f"{source}: field 'stages.{name}.config': reference ${{{ref}}} names no stage; "
                                f"stages: {', '.join(recipe.stages)}")
            found.append(ref)
        deps[name] = list(dict.fromkeys(found))
    order, state = [], {}

    def visit(n, path):
        if state.get(n) == "done":
            return
        if state.get(n) == "visiting":
            raise UserError(f"{source}: stages form a cycle: {' -> '.join(path + [n])}")
        state[n] = "visiting"
        for d in deps[n]:
            visit(d, path + [n])
        state[n] = "done"
        order.append(n)

    for n in recipe.stages:
        visit(n, [])
    return Plan(recipe, source, order, deps)


class NoCandidate(UserError):
    """`${bench:winner}` (or `runner_up`) where the bench passed too few candidates: the stage is skipped."""


def _lookup(p: Plan, validating: bool, skipped: dict[str, str] | None = None):
    def lookup(ref: str, pick: str | None):
        if ref == "data":
            return p.data
        if skipped and ref in skipped:
            return None
        if pick is None or validating:
            return p.out(ref)
        results = p.out(ref) / "results.json"
        if not results.exists():
            raise UserError(f"${{{ref}:{pick}}}: stage '{ref}' is not a bench stage (no results.json)")
        summary = json.loads(results.read_text())
        ranked = [n for n in sorted(summary["passed"], key=lambda n: -summary["results"][n]["score"])]
        idx = 0 if pick == "winner" else 1
        if len(ranked) <= idx:
            raise NoCandidate(f"${{{ref}:{pick}}}: {summary.get('reason') or 'too few candidates passed the gates'}"
                              f" (bench '{ref}', {len(ranked)} passed)")
        # The candidate's path as the recipe names it now, not as the bench recorded it: an output directory that
        # was moved (or a checkout of the data) resolves to where it is.
        named = p.recipe.stages[ref].config.get("models", {}).get(ranked[idx])
        if isinstance(named, str):
            return Path(_substitute(named, lookup))
        return Path(json.loads((p.out(ref) / "manifest.json").read_text())["config"]["models"][ranked[idx]])
    return lookup


def validate_all(p: Plan) -> None:
    """Validate every stage's config before any work starts (typos fail in seconds, not after training)."""
    from shipit.ship.kinds import KINDS

    for name in p.order:
        spec = p.recipe.stages[name]
        cfg = _substitute(spec.config, _lookup(p, validating=True))
        KINDS[spec.kind].validate(cfg, p.out(name), f"{p.source}: stage '{name}'")


def check_serving_env(p: Plan, names: list[str]) -> None:
    """A stage that will serve with vLLM (an A/B experiment, a vLLM generator) fails before any work when there is
    no serving environment, not after the training stages before it."""
    from shipit.models.vllm_server import find_vllm_python

    for name in names:
        spec = p.recipe.stages[name]
        generator = spec.config.get("generator") or {}
        if spec.kind == "serve/experiment":
            explicit = spec.config.get("vllm_python")
        elif isinstance(generator, dict) and generator.get("backend") == "vllm":
            explicit = generator.get("vllm_python")
        else:
            continue
        try:
            find_vllm_python(explicit)
        except UserError as e:
            raise UserError(f"{p.source}: stage '{name}' serves with vLLM: {e}") from None


def _file_fingerprint(value, data: Path) -> list[str]:
    """Content hashes of the existing files a config names (datasets, constitutions) and of the recipe's data
    directory when a config names it (a bench's `data_dir`): edits rerun the stage."""
    from shipit.registry import hash_path

    out = []
    for v in (value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]):
        if isinstance(v, (dict, list)):
            out += _file_fingerprint(v, data)
        elif isinstance(v, str) and len(v) < 4096 and "\n" not in v and (
                Path(v).is_file() or Path(v).is_dir() and Path(v).resolve() == data.resolve()):
            out.append(hash_path(Path(v)))
    return out


def cache_key(p: Plan, name: str, keys: dict[str, str]) -> str:
    """Hash of the stage's kind, its config, the content of the files it names, its inputs' keys and shipit's
    version (a new release may compute a stage differently: its cached outputs are not reused).

    References (${stage}, ${data}) enter as written, not as the paths they resolve to: the inputs' keys and the
    files' hashes stand for what they hold, so a moved output directory or checkout keeps its cache."""
    spec = p.recipe.stages[name]
    resolved = _substitute(spec.config, _lookup(p, validating=True))
    blob = json.dumps({"shipit": shipit.__version__, "kind": spec.kind, "config": spec.config,
                       "files": _file_fingerprint(resolved, p.data),
                       "deps": {d: keys[d] for d in p.deps[name]}}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def log_path(root: Path, name: str) -> Path:
    return root / ".ship" / "logs" / f"{name}.log"


@contextmanager
def fds_to(path: Path):
    """Send this process's stdout and stderr (file descriptors, so C and loguru output too) to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush(), sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as f:
        os.dup2(f.fileno(), 1), os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


class State:
    """`OUT/.ship/state.json`: each finished stage's cache key and time; the key of a stage in progress."""

    def __init__(self, root: Path):
        self.path = root / ".ship" / "state.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {"done": {}, "running": {}}

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)


def status(p: Plan, name: str, key: str, state: State, rebuilding: set[str] = frozenset()) -> str:
    """`cached` when the output exists with the same key and every input stage's output is the one it was made
    from, else why it must run. An input stage rebuilt under the same key (its output deleted to rerun it, as after a
    code change) makes new outputs its dependents have not seen: `rebuilding` names the stages this run will rebuild,
    and each finished stage records the run of every input it read (`after`), so a rebuild in an earlier run (say
    with `--until`) is seen too."""
    done = state.data["done"].get(name)
    if done is None or not (p.out(name) / "manifest.json").exists():
        return "run (new)"
    if done["key"] == key:
        after = done.get("after")  # None in a state written before stages recorded their inputs' runs
        rebuilt = [d for d in p.deps[name] if d in rebuilding
                   or (after is not None and state.data["done"].get(d, {}).get("run") != after.get(d))]
        return f"run (its input '{rebuilt[0]}' is rebuilt)" if rebuilt else "cached"
    if done.get("shipit", shipit.__version__) != shipit.__version__:
        return f"run (written by shipit {done['shipit']}, this is {shipit.__version__})"
    return "run (config or inputs changed)"


def ship(recipe_path: Path, overrides=(), dry_run: bool = False, until: str | None = None,
         echo=print, rerun=()) -> dict:
    """Run a recipe; returns {stage: {"status", "seconds", "output"}} in run order. The stages named in `rerun` run
    even when cached (as after a change to code the cache key does not see), and so every stage that reads them."""
    from shipit.ship.kinds import KINDS

    recipe = load_config(recipe_path, Recipe, overrides, what="recipe")
    p = plan(recipe, str(recipe_path))
    order = p.order
    for name in rerun:
        if name not in recipe.stages:
            raise UserError(f"--rerun {name}: no such stage; stages: {', '.join(recipe.stages)}")

    def why_run(name: str, key: str, rebuilding: set[str]) -> str:
        why = status(p, name, key, state, rebuilding)
        return "run (--rerun)" if why == "cached" and name in rerun else why

    if until is not None:
        if until not in recipe.stages:
            raise UserError(f"--until {until}: no such stage; stages: {', '.join(recipe.stages)}")
        needed, todo = set(), [until]
        while todo:
            n = todo.pop()
            if n not in needed:
                needed.add(n)
                todo += p.deps[n]
        order = [n for n in order if n in needed]
    if not p.data.is_dir():
        raise UserError(f"{recipe_path}: field 'data': directory not found: {p.data} (relative paths are read from "
                        f"the recipe's directory)")
    validate_all(p)
    root = Path(recipe.out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    state = State(root)
    keys: dict[str, str] = {}
    report: dict[str, dict] = {}
    if not dry_run:
        # Provisional keys: a file an upstream stage has yet to write is missing from them, so a stage they call
        # cached is cached; the keys a stage is run and recorded with are computed when its inputs exist.
        early: dict[str, str] = {}
        planned: set[str] = set()
        for name in order:
            early[name] = cache_key(p, name, early)
            if why_run(name, early[name], planned) != "cached":
                planned.add(name)
        check_serving_env(p, [n for n in order if n in planned])
    started = time.perf_counter()
    rebuilding: set[str] = set()
    skipped: dict[str, str] = {}  # stage -> why: no bench winner to read, or a stage it needs was skipped
    for i, name in enumerate(order, 1):
        spec = recipe.stages[name]
        keys[name] = cache_key(p, name, keys)
        why = why_run(name, keys[name], rebuilding)
        head = f"[{i}/{len(order)}] {name} ({spec.kind})"
        missing, unmet = [d for d in p.deps[name] if d in skipped], None
        if not dry_run and missing and not KINDS[spec.kind].reads_skipped:
            unmet = f"needs '{missing[0]}', which was skipped"
        elif not dry_run and why != "cached":
            try:  # resolved now: a ${bench:winner} with no winner skips the stage (and what reads it)
                cfg = _substitute(spec.config, _lookup(p, validating=False, skipped=skipped))
            except NoCandidate as e:
                unmet = str(e)
        if unmet:
            skipped[name] = unmet
            echo(f"{head}: skipped ({unmet})")
            report[name] = {"status": "skipped", "output": str(p.out(name))}
            continue
        if why != "cached":
            rebuilding.add(name)
        if dry_run or why == "cached":
            took = state.data["done"].get(name, {}).get("seconds")
            echo(f"{head}: {why}" + (f" (took {took}s when it ran)" if why == "cached" and took else ""))
            report[name] = {"status": "cached" if why == "cached" else "planned", "output": str(p.out(name))}
            continue
        # Resume a crashed run of the same stage config; a changed config starts clean.
        resume = state.data["running"].get(name) == keys[name]
        state.data["running"][name] = keys[name]
        state.save()
        echo(f"{head}: {why}{' - resuming' if resume else ''}"
             + (f" (library output: {log_path(root, name)})" if spec.kind in QUIET_KINDS else ""))
        t0 = time.perf_counter()
        kind = KINDS[spec.kind]
        validated = kind.validate(cfg, p.out(name), f"{p.source}: stage '{name}'")
        with (fds_to(log_path(root, name)) if spec.kind in QUIET_KINDS else nullcontext()):
            kind.runner(validated, p.out(name), resume)
        seconds = round(time.perf_counter() - t0, 1)
        state.data["done"][name] = {"key": keys[name], "seconds": seconds, "kind": spec.kind,
                                    "shipit": shipit.__version__,
                                    "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                    "run": uuid.uuid4().hex[:12],
                                    "after": {d: state.data["done"].get(d, {}).get("run") for d in p.deps[name]}}
        state.data["running"].pop(name, None)
        state.save()
        echo(f"      done in {seconds}s")
        report[name] = {"status": "ran", "seconds": seconds, "output": str(p.out(name))}
    if not dry_run:
        echo(f"{recipe.name}: {len(order)} stages in {time.perf_counter() - started:.0f}s "
             f"({sum(r['status'] == 'cached' for r in report.values())} cached); outputs under {root}")
    if skipped:  # the work that could run ran, and its outputs (a report among them) are written
        first = next(iter(skipped.items()))
        failure = GateFailure(f"{len(skipped)} stage(s) skipped ({', '.join(skipped)}): {first[0]}: {first[1]}")
        failure.report = report
        raise failure
    return report
