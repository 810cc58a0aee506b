"""The stage kinds a recipe can use: each validates its config and runs one shipit stage into `out`."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from shipit.config import validate
from shipit.train import stages


@dataclass(frozen=True)
class Kind:
    """How to validate a stage's config (model class, and whether `output` is a field) and how to run it."""

    model: str
    """`module:Class` of the config model."""
    runner: Callable[[object, Path, bool], Path]
    has_output: bool = True
    reads_skipped: bool = False
    """Runs when a stage it reads was skipped (e.g. no bench winner for an A/B): that field is left empty."""

    def config_class(self):
        module, cls = self.model.split(":")
        return getattr(importlib.import_module(module), cls)

    def validate(self, cfg: dict, out: Path, source: str):
        data = {**cfg, "output": out} if self.has_output else cfg
        config = validate(data, self.config_class(), source)
        if self.model.startswith("mergekit."):
            # mergekit's schema ignores unknown keys and parameter names; a recipe's typo must not merge silently
            from shipit.merge.validate import Where, check_keys, check_parameters

            check_keys(cfg, Where(source, ""))
            check_parameters(config, Where(source, ""))
        return config


def _train(stage: str) -> Callable:
    def run(cfg, out: Path, resume: bool) -> Path:
        from shipit.train import get_stage

        return get_stage(stage).run(cfg, resume=resume)
    return run


def _base(cfg, out: Path, resume: bool) -> Path:
    from shipit.demo.base import build_base

    return build_base(cfg, out, resume=resume)


def _base_import(cfg, out: Path, resume: bool) -> Path:
    from shipit.models.catalog import MODELS
    from shipit.models.cut import truncate_layers
    from shipit.models.fetch import fetch_model
    from shipit.models.importer import import_model

    source = fetch_model(cfg.source, echo=print) if cfg.source in MODELS else Path(cfg.source).expanduser()
    if cfg.layers is not None:
        return truncate_layers(source, out, cfg.layers)
    return import_model(source, out, dtype=cfg.dtype, echo=print)


def _merge(cfg, out: Path, resume: bool) -> Path:
    import yaml

    from shipit.merge.run import run

    path = out.parent / ".ship" / f"{out.name}.merge.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), sort_keys=False))
    return run(path, out, seed=0)


def _merge_search(cfg, out: Path, resume: bool) -> Path:
    from shipit.ship.merge_search import run

    return Path(run(cfg)["output"])


def _quantize(cfg, out: Path, resume: bool) -> Path:
    from shipit.quantize.run import run

    return run(cfg.method, cfg.model, out, calibration=cfg.calibration, eval_data=cfg.eval_data, backend=cfg.backend,
               group_size=cfg.group_size, max_ppl_increase=cfg.max_ppl_increase, over_bound=cfg.over_bound)


def _bench(cfg, out: Path, resume: bool) -> Path:
    from shipit.bench.run import run

    run(cfg)
    return out


def _data(module: str) -> Callable:
    def run(cfg, out: Path, resume: bool) -> Path:
        return importlib.import_module(module).run(cfg, resume=resume)
    return run


def _experiment(cfg, out: Path, resume: bool) -> Path:
    from shipit.ship.experiment import run_experiment

    return run_experiment(cfg)[0]


def _report(cfg, out: Path, resume: bool) -> Path:
    from shipit.ship.report import write_report

    return write_report(cfg)


KINDS: dict[str, Kind] = {
    "base": Kind("shipit.demo.base:BaseConfig", _base, has_output=False),
    "base/import": Kind("shipit.ship.stages:BaseImportStage", _base_import, has_output=False),
    **{f"train/{s}": Kind(f"{module}:Config", _train(s)) for s, module in stages().items()},
    "data/synth": Kind("shipit.data.synth:SynthConfig", _data("shipit.data.synth")),
    "data/cai": Kind("shipit.data.cai:CAIConfig", _data("shipit.data.cai")),
    "data/onpolicy": Kind("shipit.data.onpolicy:OnPolicyConfig", _data("shipit.data.onpolicy")),
    "iterate": Kind("shipit.ship.iterate:IterateConfig", _data("shipit.ship.iterate")),
    "merge": Kind("mergekit.config:MergeConfiguration", _merge, has_output=False),
    "merge/search": Kind("shipit.ship.merge_search:SearchConfig", _merge_search),
    "quantize": Kind("shipit.ship.stages:QuantizeStage", _quantize, has_output=False),
    "bench": Kind("shipit.bench.config:BenchConfig", _bench),
    "serve/experiment": Kind("shipit.ship.experiment:ExperimentConfig", _experiment),
    "report": Kind("shipit.ship.report:ReportConfig", _report, reads_skipped=True),
}
