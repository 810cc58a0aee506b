"""Merge search: the grid and TPE find a scripted objective's optimum; front, plot, winner and errors are real."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from shipit.config import load_config
from shipit.errors import UserError
from shipit.ship.pareto import pareto_front
from shipit.ship.merge_search import Objective, SearchConfig, run
from tests.test_merge import perturbed

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def family(tiny_base, tmp_path_factory):
    root = tmp_path_factory.mktemp("search-family")
    return {"base": tiny_base, "sft-domain": perturbed(tiny_base, root / "a", 0),
            "sft-safety": perturbed(tiny_base, root / "b", 1)}


def weights(path):
    return load_file(Path(path) / "model.safetensors")


def distance_to(target: dict[str, torch.Tensor]):
    """Mean absolute difference of a model's tensors from `target`."""
    def dist(model: Path) -> float:
        w = weights(model)
        return sum((w[k] - target[k]).abs().mean().item() for k in target) / len(target)
    return dist


def mix(family, w):
    a, b = weights(family["sft-domain"]), weights(family["sft-safety"])
    return {k: w * a[k] + (1 - w) * b[k] for k in a}


def config(family, tmp_path, **kw):
    base = dict(models=[family["sft-domain"], family["sft-safety"]], base_model=family["base"], methods=["linear"],
                objectives=[{"task": "format"}], output=tmp_path / "out")
    return SearchConfig.model_validate({**base, **kw})


def test_grid_finds_the_known_optimum(family, tmp_path):
    target = mix(family, 0.7)
    dist = distance_to(target)
    seen = []

    def objective(model, trial):  # scripted: peaked where the merge equals the 0.7/0.3 mix
        seen.append(trial["params"]["weight"])
        return {"format.score": -dist(model)}

    lines = []
    cfg = config(family, tmp_path, weight=[0.0, 1.0], grid_points=11, trials=11, sampler="grid")
    summary = run(cfg, objective=objective, echo=lines.append)
    assert seen == pytest.approx([i / 10 for i in range(11)])
    assert summary["winner"]["params"] == {"weight": 0.7} and summary["winner"]["score"] > -1e-6
    out = tmp_path / "out"
    merged = weights(out)  # the winner is the output model, ready for the next stage
    assert all(torch.allclose(merged[k], target[k], atol=1e-5) for k in target)
    rows = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    scores = [r["score"] for r in rows]
    assert len(rows) == 11 and scores.index(max(scores)) == 7
    assert all(x < y for x, y in zip(scores[:7], scores[1:8])) and all(x > y for x, y in zip(scores[7:], scores[8:]))
    assert [r["trial"] for r in json.loads((out / "pareto.json").read_text())] == [8]
    assert (out / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = json.loads((out / "manifest.json").read_text())
    assert m["stage"] == "merge/search" and m["merge_method"] == "linear" and m["winner"]["trial"] == 8
    assert m["parents"] == [str(family["base"].resolve())]
    assert len(lines) == 11 and lines[0].startswith("trial 1/11 linear weight=0 -> format.score=")
    trials = Path(summary["trials_dir"])  # only the winner keeps weights; every trial keeps its mergekit YAML
    assert sorted(p.name for p in trials.iterdir()) == [f"trial-{i:03d}" for i in range(1, 12)]
    assert [p.parent.name for p in trials.glob("*/model")] == ["trial-008"]
    assert yaml.safe_load((trials / "trial-008" / "merge.yaml").read_text())["models"][1]["parameters"] == \
        {"weight": 0.3}


def test_two_objectives_front_is_the_trade_off_segment(family, tmp_path):
    d7, d3 = distance_to(mix(family, 0.7)), distance_to(mix(family, 0.3))
    cfg = config(family, tmp_path, weight=[0.0, 1.0], grid_points=11, trials=11,
                 objectives=[{"task": "format", "direction": "minimize"}, {"task": "safety", "weight": 3}])
    summary = run(cfg, objective=lambda model, trial: {"format.score": d7(model), "safety.score": -d3(model)},
                  echo=lambda _: None)
    front = json.loads((tmp_path / "out" / "pareto.json").read_text())
    assert [r["params"]["weight"] for r in front] == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7])
    assert summary["winner"]["params"]["weight"] == pytest.approx(0.3)  # safety weighs 3x: closest to the 0.3 mix


def test_min_of_shares_keeps_both_parents_where_the_mean_trades_one_away(family, tmp_path):
    """Domain value w/2 (the domain parent scores 0.5), safety 1 - w: the weighted mean of raw values is best at
    w = 0, which keeps none of the domain; the worst share kept (w, 1 - w) is best at w = 0.5."""
    d_a, d_b = distance_to(weights(family["sft-domain"])), distance_to(weights(family["sft-safety"]))
    span = d_a(family["sft-safety"])
    calls = []

    def objective(model, trial):
        calls.append(trial)
        return {"domain_qa.score": 0.5 * (1 - d_a(model) / span), "safety.score": 1 - d_b(model) / span}

    objs = [{"task": "domain_qa"}, {"task": "safety"}]
    mean = run(config(family, tmp_path / "mean", weight=[0.0, 1.0], grid_points=5, trials=5, sampler="grid",
                      objectives=objs), objective=objective, echo=lambda _: None)
    assert mean["winner"]["params"] == {"weight": 0.0} and mean["references"] == {} and len(calls) == 5
    calls.clear()
    lines = []
    shared = [{**objs[0], "of": family["sft-domain"]}, {**objs[1], "of": family["sft-safety"]}]
    cfg = config(family, tmp_path / "min", weight=[0.0, 1.0], grid_points=5, trials=5, sampler="grid",
                 objectives=shared, combine="min")
    best = run(cfg, objective=objective, echo=lines.append)
    assert [c.get("objectives") for c in calls[:2]] == [["domain_qa.score"], ["safety.score"]]  # each parent once
    assert calls[0]["reference"] == str(family["sft-domain"]) and len(calls) == 7
    assert best["references"] == pytest.approx({"domain_qa.score": 0.5, "safety.score": 1.0}, abs=1e-5)
    assert best["winner"]["params"] == {"weight": 0.5} and best["combine"] == "min"
    rows = [json.loads(line) for line in (tmp_path / "min" / "out" / "trials.jsonl").read_text().splitlines()]
    assert [r["shares"]["domain_qa.score"] for r in rows] == pytest.approx([0, 0.25, 0.5, 0.75, 1], abs=1e-4)
    assert [r["score"] for r in rows] == pytest.approx([0, 0.25, 0.5, 0.25, 0], abs=1e-4)
    assert lines[0].startswith("reference ") and "(50% kept)" in lines[4]
    manifest = json.loads((tmp_path / "min" / "out" / "manifest.json").read_text())
    assert manifest["winner"]["shares"] == pytest.approx({"domain_qa.score": 0.5, "safety.score": 0.5}, abs=1e-4)


def test_a_tie_at_the_worst_objective_goes_to_the_trial_that_keeps_more_of_the_others(family, tmp_path):
    """Retention binds every trial at 0.3 (combine 'min' scores them all 0.3); domain 0.5 + 0.5 w rises and safety
    1 - 0.2 w falls with the weight: the next-worst objective is best at w = 0.75 (0.85), not at the first trial
    (w = 0: 0.5), which a strict comparison of scores alone kept."""
    def objective(model, trial):
        w = trial["params"]["weight"]
        return {"domain_qa.score": 0.5 + 0.5 * w, "safety.score": 1 - 0.2 * w, "retention.score": 0.3}

    cfg = config(family, tmp_path, weight=[0.0, 1.0], grid_points=5, trials=5, sampler="grid", combine="min",
                 objectives=[{"task": "domain_qa"}, {"task": "safety"}, {"task": "retention"}])
    summary = run(cfg, objective=objective, echo=lambda _: None)
    rows = [json.loads(x) for x in (tmp_path / "out" / "trials.jsonl").read_text().splitlines()]
    assert [r["score"] for r in rows] == pytest.approx([0.3] * 5)
    assert summary["winner"]["params"] == {"weight": 0.75}
    assert [p.parent.name for p in Path(summary["trials_dir"]).glob("*/model")] == ["trial-004"]


def test_constraints_keep_the_winner_inside_the_bench_gates(family, tmp_path):
    """The score peaks at the 0.7 mix, but a constrained metric (scripted as the weight itself: think over-refusal
    rising with the safety specialist's weight) must stay <= 0.5: the winner is the best trial that meets it. When no
    trial can, the best-scoring one is kept and the search says what it misses."""
    dist = distance_to(mix(family, 0.7))

    def objective(model, trial):
        return {"format.score": -dist(model), "safety.over_refusal": trial["params"]["weight"]}

    lines = []
    cfg = config(family, tmp_path / "met", weight=[0.0, 1.0], grid_points=11, trials=11,
                 constraints={"safety.over_refusal": "<= 0.5"})
    summary = run(cfg, objective=objective, echo=lines.append)
    assert summary["winner"]["params"] == {"weight": 0.5} and summary["feasible"] == [1, 2, 3, 4, 5, 6]
    rows = [json.loads(x) for x in (tmp_path / "met" / "out" / "trials.jsonl").read_text().splitlines()]
    assert [r["violations"]["safety.over_refusal"] for r in rows] == pytest.approx([0] * 6 + [0.1, 0.2, 0.3, 0.4, 0.5])
    assert max(r["score"] for r in rows) == rows[7]["score"] > summary["winner"]["score"]  # 0.7 scored best, missed
    assert "(misses safety.over_refusal <= 0.5)" in lines[7] and "misses" not in lines[5]
    assert lines[-1] == (f"note: trial 8 scored higher ({rows[7]['score']:.4f} against {rows[5]['score']:.4f}) but "
                         "misses safety.over_refusal <= 0.5; kept trial 6, the best that meets every constraint")
    assert summary["outscored_by"]["trial"] == 8 and summary["outscored_by"]["params"] == {"weight": 0.7}
    assert json.loads((tmp_path / "met" / "out" / "manifest.json").read_text())["metrics"]["constraints_met"] is True

    # With a spare the bound is met only from inside it: `<= 0.5` with 0.25 to spare keeps the 0.2 mix.
    lines.clear()
    cfg = config(family, tmp_path / "spare", weight=[0.0, 1.0], grid_points=11, trials=11, spare=0.25,
                 constraints={"safety.over_refusal": "<= 0.5"})
    summary = run(cfg, objective=objective, echo=lines.append)
    assert summary["winner"]["params"] == {"weight": 0.2} and summary["feasible"] == [1, 2, 3]
    assert summary["constraints"] == {"safety.over_refusal": "<= 0.5"} and summary["spare"] == 0.25
    assert summary["constraints_applied"] == {"safety.over_refusal": "<= 0.25"}
    assert lines[0] == "constraints with 0.25 to spare: safety.over_refusal <= 0.25"
    assert "(misses safety.over_refusal <= 0.25)" in lines[5]   # weight 0.4: inside the gate, not the spare

    lines.clear()
    cfg = config(family, tmp_path / "unmet", weight=[0.0, 1.0], grid_points=11, trials=11,
                 constraints={"safety.over_refusal": "< 0"})
    summary = run(cfg, objective=objective, echo=lines.append)
    assert summary["winner"]["params"] == {"weight": 0.7} and summary["feasible"] == []
    assert summary["outscored_by"] is None  # the best-scoring trial was kept: nothing scored higher
    assert lines[-1] == "warning: no trial met every constraint; keeping the best-scoring one, trial 8 (misses " \
                        "safety.over_refusal < 0)"
    assert json.loads((tmp_path / "unmet" / "out" / "manifest.json").read_text())["metrics"]["constraints_met"] is False

    # TPE is told the misses: after the same random startup trials it proposes elsewhere, and the winner meets them.
    def proposals(name, **kw):
        cfg = config(family, tmp_path / name, weight=[0.0, 1.0], sampler="tpe", trials=10, startup_trials=4, seed=0,
                     **kw)
        summary = run(cfg, objective=objective, echo=lambda _: None)
        rows = (tmp_path / name / "out" / "trials.jsonl").read_text().splitlines()
        return summary, [json.loads(x)["params"]["weight"] for x in rows]

    (_, free), (summary, bound) = proposals("tpe"), proposals("tpe-bound", constraints={"safety.over_refusal": "<= 0.5"})
    assert bound[:4] == free[:4] and bound[4:] != free[4:]
    assert summary["winner"]["params"]["weight"] <= 0.5 and summary["feasible"]
    # A constrained metric the objective does not report is a clear error.
    with pytest.raises(UserError, match="constraint safety.refusal_rate: the objective reported no value for it"):
        run(config(family, tmp_path / "missing", grid_points=2, trials=2,
                   constraints={"safety.refusal_rate": ">= 0.5"}), objective=objective, echo=lambda _: None)
    with pytest.raises(ValueError, match="constraint 'safty.over_refusal' must be 'TASK.METRIC' for a bench task"):
        config(family, tmp_path, constraints={"safty.over_refusal": "<= 0.2"})
    with pytest.raises(ValueError, match="constraint 'safety.over_refusal': condition 'at most 0.2'"):
        config(family, tmp_path, constraints={"safety.over_refusal": "at most 0.2"})


def test_a_spare_tightens_each_bound_toward_its_inside():
    from shipit.ship.merge_search import tightened

    bounds = {"a.x": ">= 0.5", "a.y": "<= 0.2", "a.z": "> 0", "a.w": "< 1", "a.v": "== 3"}
    assert tightened(bounds, 0.02) == {"a.x": ">= 0.52", "a.y": "<= 0.18", "a.z": "> 0.02", "a.w": "< 0.98",
                                       "a.v": "== 3"}
    assert tightened(bounds, 0) == bounds
    with pytest.raises(ValueError, match="spare"):
        SearchConfig(models=["a"], objectives=[{"task": "safety"}], output="o", spare=-0.1)


def test_share_objective_must_be_maximized():
    with pytest.raises(ValueError, match="'of' .* needs direction: maximize"):
        Objective(task="general_ppl", metric="ppl", direction="minimize", of="some/model")


def test_pareto_front_respects_directions():
    objs = [Objective(task="general_ppl", metric="ppl", direction="minimize"), Objective(task="safety")]
    rows = [{"trial": i, "values": {"general_ppl.ppl": p, "safety.score": s}}
            for i, (p, s) in enumerate([(10, 0.5), (12, 0.9), (11, 0.4), (10, 0.5), (9, 0.1)])]
    assert [r["trial"] for r in pareto_front(rows, objs)] == [0, 1, 3, 4]


def test_tpe_searches_methods_and_gets_near_the_optimum(family, tmp_path):
    dist = distance_to(mix(family, 0.7))
    cfg = config(family, tmp_path, methods=["linear", "task_arithmetic", "model_stock"], sampler="tpe", trials=14,
                 seed=0)
    summary = run(cfg, objective=lambda model, trial: {"format.score": -dist(model)}, echo=lambda _: None)
    rows = [json.loads(line) for line in (tmp_path / "out" / "trials.jsonl").read_text().splitlines()]
    assert len(rows) == 14 and {r["method"] for r in rows} == {"linear", "task_arithmetic", "model_stock"}
    assert {k for r in rows if r["method"] == "task_arithmetic" for k in r["params"]} == {"weight.0", "weight.1"}
    assert all(r["params"] == {} for r in rows if r["method"] == "model_stock")
    assert sum("duplicate_of" in r for r in rows) == sum(r["method"] == "model_stock" for r in rows) - 1
    best = summary["winner"]
    assert best["method"] == "linear" and abs(best["params"]["weight"] - 0.7) < 0.1
    assert best["score"] == max(r["score"] for r in rows)


def test_ties_weights_scale_task_vectors_that_share_no_weights(family, tmp_path):
    """The demo's specialists move disjoint weights (domain: MLP, safety: attention). With mergekit's default
    normalization, ties divides each parameter by the weight of the one model that moved it, so any weights give the
    plain sum; the search merges without it, so each searched weight scales its own task vector."""
    from shipit.merge.run import merge, validate_merge_data
    from shipit.ship.merge_search import candidate_config, dimensions

    base = weights(family["base"])
    a, b = weights(family["sft-domain"]), weights(family["sft-safety"])
    only = {"attn": lambda k: "self_attn" in k, "mlp": lambda k: ".mlp." in k}
    disjoint = {}
    for name, src, part in (("attn", a, "attn"), ("mlp", b, "mlp")):
        disjoint[name] = tmp_path / name
        shutil.copytree(family["base"], disjoint[name])
        save_file({k: src[k] if only[part](k) else base[k] for k in base}, disjoint[name] / "model.safetensors",
                  metadata={"format": "pt"})
        (disjoint[name] / "manifest.json").unlink()
    cfg = config(family, tmp_path, methods=["ties"], models=[disjoint["attn"], disjoint["mlp"]])
    assert set(dimensions(cfg, "ties")) == {"weight.0", "weight.1", "density"}
    data = candidate_config(cfg, "ties", {"weight.0": 1.0, "weight.1": 0.25, "density": 1.0})
    text = yaml.safe_dump(data, sort_keys=False)
    merged = weights(merge(validate_merge_data(data, tmp_path / "m.yaml", text), tmp_path / "merged", text, 0))
    moved = {"attn": 0, "mlp": 0}
    for k in base:
        part = next((p for p, match in only.items() if match(k)), None)
        scale, src = {"attn": (1.0, a), "mlp": (0.25, b), None: (0.0, base)}[part]
        assert torch.allclose(merged[k], base[k] + scale * (src[k] - base[k]), atol=1e-5), k
        moved[part] = moved.get(part, 0) + (part is not None)
    assert moved["attn"] and moved["mlp"]
    # What mergekit's default normalization would have merged from the same weights: the plain sum.
    data["parameters"] = {}
    text = yaml.safe_dump(data, sort_keys=False)
    summed = weights(merge(validate_merge_data(data, tmp_path / "n.yaml", text), tmp_path / "summed", text, 0))
    k = next(k for k in base if only["mlp"](k))
    assert torch.allclose(summed[k], b[k], atol=1e-5) and not torch.allclose(summed[k], merged[k], atol=1e-4)


def test_a_weight_range_per_model(family, tmp_path):
    """`weights` gives each model's own weight its range (the demo's safety specialist needs >= 1, its domain
    specialist less); linear's mixing weight keeps `weight`; the grid and TPE draw from those ranges."""
    from shipit.ship.merge_search import dimensions, grid

    cfg = config(family, tmp_path, methods=["linear", "task_arithmetic"], weight=[0.2, 0.4],
                 weights=[[0.5, 1.0], [1.0, 1.5]], sampler="grid", grid_points=2, trials=6)
    assert dimensions(cfg, "task_arithmetic") == {"weight.0": (0.5, 1.0), "weight.1": (1.0, 1.5)}
    assert dimensions(cfg, "linear") == {"weight": (0.2, 0.4)}
    assert sorted((p["weight.0"], p["weight.1"]) for m, p in grid(cfg) if m == "task_arithmetic") == [
        (0.5, 1.0), (0.5, 1.5), (1.0, 1.0), (1.0, 1.5)]
    cfg = config(family, tmp_path, methods=["task_arithmetic"], weights=[[0.5, 1.0], [1.0, 1.5]], sampler="tpe",
                 trials=4)
    run(cfg, objective=lambda model, trial: {"format.score": 0.0}, echo=lambda _: None)
    rows = [json.loads(line)["params"] for line in (tmp_path / "out" / "trials.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(0.5 <= r["weight.0"] <= 1.0 <= r["weight.1"] <= 1.5 for r in rows), rows
    p = tmp_path / "s.yaml"
    p.write_text("models: [a, b]\nmethods: [ties]\nweights: [[0.5, 1.0]]\nobjectives: [{task: safety}]\noutput: o\n")
    with pytest.raises(UserError, match=r"s.yaml:3: field 'weights': 1 ranges for 2 models; give one \[low, high\]"):
        load_config(p, SearchConfig)
    p.write_text("models: [a, b]\nweights: [[0.5, 1.0], [1.5, 1.0]]\nobjectives: [{task: safety}]\noutput: o\n")
    with pytest.raises(UserError, match=r"field 'weights': range 1 \(model 1\) must be \[low, high\], got \[1.5, 1"):
        load_config(p, SearchConfig)


def test_tpe_models_the_scores_after_its_startup_trials(family, tmp_path):
    """The first startup_trials proposals are the seeded random ones; after them TPE proposes from the scores
    (with 3 of them it still explores: where it goes is not asserted, only that the setting reaches Optuna)."""
    dist = distance_to(mix(family, 0.7))

    def proposals(startup):
        cfg = config(family, tmp_path / str(startup), weight=[0.0, 1.0], sampler="tpe", trials=8, seed=0,
                     startup_trials=startup)
        run(cfg, objective=lambda model, trial: {"format.score": -dist(model)}, echo=lambda _: None)
        rows = (tmp_path / str(startup) / "out" / "trials.jsonl").read_text().splitlines()
        return [json.loads(line)["params"]["weight"] for line in rows]

    random_only, modelled = proposals(8), proposals(3)
    assert modelled[:3] == random_only[:3] and modelled[3:] != random_only[3:]


@pytest.mark.parametrize("change, pattern", [
    ({"methods": ["slerp"], "models": "three"}, r"\(method 'slerp'\): field 'models': method 'slerp' merges exactly 2"),
    ({"methods": ["ties"], "base_model": None}, r"\(method 'ties'\): field 'base_model': method 'ties' needs a base"),
    ({"sampler": "grid", "grid_points": 4, "methods": ["linear", "slerp"], "trials": 7},
     r"field 'trials': the grid has 8 points, more than the budget of 7"),
], ids=["slerp-three", "ties-no-base", "grid-over-budget"])  # w4a16 now fits hidden 64 (group 64): no shape row
def test_search_fails_before_any_trial(family, tmp_path, change, pattern):
    if change.get("models") == "three":
        change["models"] = [family["sft-domain"], family["sft-safety"], family["base"]]
    cfg = config(family, tmp_path, **change)
    with pytest.raises(UserError, match=pattern) as err:
        run(cfg, source="s.yaml", objective=lambda m, t: pytest.fail("a trial ran"))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.trials").exists()


def test_search_config_errors_name_file_line_and_field(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("models: [a, b]\nmethods: [linear, tiez]\nobjectives: [{task: safety}]\noutput: o\n")
    with pytest.raises(UserError, match=r"s.yaml:2: field 'methods': unknown merge method 'tiez'; allowed: .*ties"):
        load_config(p, SearchConfig)
    p.write_text("models: [a]\nobjectives: [{task: safety, wieght: 2}]\noutput: o\n")
    with pytest.raises(UserError, match=r"s.yaml:2: field 'objectives.0.wieght': unknown key 'wieght'; did you mean"):
        load_config(p, SearchConfig)


def test_search_with_quantize_scores_the_quantized_trial(family, tmp_path):
    from shipit.registry import read_manifest

    scored = []

    def objective(model, trial):  # what the bench would load: it must be the quantized candidate
        scored.append(model)
        return {"format.score": trial["params"]["weight"]}

    cfg = config(family, tmp_path, weight=[0.0, 1.0], grid_points=2, trials=2, quantize="fp8",
                 keep_trial_models=True)
    summary = run(cfg, objective=objective, echo=lambda _: None)
    trials = Path(summary["trials_dir"])
    assert scored == [trials / "trial-001" / "fp8", trials / "trial-002" / "fp8"]
    for path in scored:  # each is the quantize stage's output for that trial's merge
        q = read_manifest(path)
        assert q["stage"] == "quantize/fp8" and q["parents"] == [str((path.parent / "model").resolve())]
    rows = [json.loads(line) for line in (tmp_path / "out" / "trials.jsonl").read_text().splitlines()]
    assert [r["model"] for r in rows] == [str(p) for p in scored]
    # The winner (weight 1: trial 2) is handed on quantized: what the search scored is what ships.
    assert summary["winner"]["trial"] == 2
    winner_config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert winner_config["quantization_config"]["quant_method"] == "compressed-tensors"
    assert load_file(tmp_path / "out" / "model.safetensors").keys() == \
        load_file(trials / "trial-002" / "fp8" / "model.safetensors").keys()


def localized(path, family, tmp_path):
    text = path.read_text()
    for name, p in family.items():
        text = text.replace(f"demo-out/{name}", str(p))
    dst = tmp_path / path.name
    dst.write_text(text.replace("demo-out/", f"{tmp_path}/"))
    return dst


@pytest.mark.parametrize("path", sorted((REPO / "merge_configs" / "search").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_search_configs_validate(path, family, tmp_path):
    from shipit.ship.merge_search import _check_before_work

    cfg = load_config(localized(path, family, tmp_path), SearchConfig)
    _check_before_work(cfg, str(path))  # every method's candidate config, and the quantizer's shape check


def test_cli_merge_search_with_the_real_bench(family, tmp_path, monkeypatch, capsys):
    from shipit.cli import main
    from shipit.demo.world import DATA_DIR
    from shipit.registry import lineage_lines

    data = tmp_path / "data"  # a few held-out rows keep the real bench quick
    data.mkdir()
    rows = (DATA_DIR / "general_heldout.jsonl").read_text().splitlines()[:6]
    (data / "general_heldout.jsonl").write_text("\n".join(rows) + "\n")
    cfg = {"data_dir": str(data), "models": [str(family["sft-domain"]), str(family["sft-safety"])], "base_model": str(family["base"]),
           "methods": ["linear"], "weight": [0.0, 1.0], "grid_points": 3, "trials": 3, "sampler": "grid",
           "objectives": [{"task": "general_ppl"}], "output": str(tmp_path / "searched")}
    p = tmp_path / "search.yaml"
    p.write_text(yaml.safe_dump(cfg))
    monkeypatch.setattr(sys, "argv", ["shipit", "merge", "search", str(p), "--set", "keep_trial_models=true"])
    main()
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" -> ")[0] for line in out[:3]] == [f"trial {i}/3 linear weight={w}"
                                                         for i, w in ((1, 0), (2, 0.5), (3, 1))]
    rows = [json.loads(line) for line in (tmp_path / "searched" / "trials.jsonl").read_text().splitlines()]
    assert all(0 < r["values"]["general_ppl.score"] < 1 for r in rows)
    assert out[-1].startswith(f"winner: trial {max(rows, key=lambda r: r['score'])['trial']} linear")
    assert len(list((tmp_path / "searched.trials").glob("*/model/model.safetensors"))) == 3
    tree = lineage_lines(tmp_path / "searched")
    assert "[merge/search]" in tree[0] and any("[base]" in line for line in tree[1:])


def test_trials_dir_with_foreign_files_is_never_wiped(family, tmp_path):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    cfg = config(family, tmp_path, trials_dir=keep)
    with pytest.raises(UserError, match=r"field 'trials_dir': .*mine holds files that are not trials \(notes.txt\)"):
        run(cfg, objective=lambda m, t: pytest.fail("a trial ran"))
    assert (keep / "notes.txt").read_text() == "precious" and not (tmp_path / "out").exists()


def test_the_plot_says_when_the_winner_misses_a_constraint():
    from shipit.ship.pareto import winner_label

    assert winner_label({"trial": 3, "violations": {"safety.over_refusal": 0.0}}) == ("winner (trial 3)", "")
    assert winner_label({"trial": 4}) == ("winner (trial 4)", "")  # a search without constraints
    assert winner_label({"trial": 2, "violations": {"safety.over_refusal": 0.07, "retention.retention_rate": 0.0}}) \
        == ("winner (trial 2; misses a constraint)", "no trial met every constraint: the winner misses "
            "safety.over_refusal")


def test_the_plot_draws_a_front_line_only_over_the_two_objectives_it_shows():
    from types import SimpleNamespace as O

    from shipit.ship.pareto import front_legend

    qa, ref, ret = (O(name=n) for n in ("domain_qa.mc_accuracy", "safety.refusal_rate", "retention.score"))
    assert front_legend([qa, ref]) == (True, "non-dominated")
    assert front_legend([qa]) == (False, "non-dominated")
    # run 8: trial 3 (below trial 2 on both axes) was on the front by its retention; a line through it misled
    assert front_legend([qa, ref, ret]) == (False, "non-dominated on all 3 objectives (also retention.score)")
