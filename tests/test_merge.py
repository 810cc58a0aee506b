"""mergekit through its Python API: merged tensors equal the formula; bad configs fail before any tensor is read."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from shipit.errors import UserError
from shipit.merge.run import run

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted((REPO / "merge_configs").glob("*.yaml"))


def perturbed(src: Path, dst: Path, seed: int, scale: float = 0.05) -> Path:
    """A copy of `src` with every tensor moved by seeded Gaussian noise (a stand-in for a fine-tune)."""
    shutil.copytree(src, dst)
    g = torch.Generator().manual_seed(seed)
    w = load_file(dst / "model.safetensors")
    save_file({k: v + scale * torch.randn(v.shape, generator=g) for k, v in w.items()}, dst / "model.safetensors",
              metadata={"format": "pt"})
    (dst / "manifest.json").unlink()
    return dst


@pytest.fixture(scope="module")
def family(tiny_base, tmp_path_factory):
    """The tiny base and two perturbed 'specialists' of it, named like the demo's directories."""
    root = tmp_path_factory.mktemp("family")
    return {"base": tiny_base, "sft-domain": perturbed(tiny_base, root / "a", 0),
            "sft-safety": perturbed(tiny_base, root / "b", 1)}


@pytest.fixture
def two_models(family):
    return family["sft-domain"], family["sft-safety"]


def write(tmp_path, cfg, name="merge.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def weights(path):
    return load_file(Path(path) / "model.safetensors")


def test_linear_merge_equals_weighted_average(two_models, tmp_path):
    a, b = two_models
    cfg = {"merge_method": "linear", "dtype": "float32",
           "models": [{"model": str(a), "parameters": {"weight": 0.3}}, {"model": str(b), "parameters": {"weight": 0.7}}]}
    out = run(write(tmp_path, cfg), tmp_path / "merged")
    wa, wb, wm = (weights(p) for p in (a, b, out))
    assert wm.keys() == wa.keys()
    for k in wa:
        assert torch.allclose(wm[k], 0.3 * wa[k] + 0.7 * wb[k], atol=1e-5), k
        assert not torch.isnan(wm[k]).any()
    m = json.loads((out / "manifest.json").read_text())
    assert m["merge_method"] == "linear" and sorted(m["inputs"]) == ["model0", "model1"]
    assert m["config"]["models"][1]["parameters"]["weight"] == 0.7
    assert (out / "tokenizer.json").exists()


def slerp_reference(t: float, v0: torch.Tensor, v1: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of two whole tensors, falling back to lerp when they are (anti)parallel."""
    a, b = v0.double().flatten(), v1.double().flatten()
    cos = float(torch.dot(a / a.norm(), b / b.norm()).clamp(-1, 1))
    if abs(cos) > 0.9995:
        return ((1 - t) * v0.double() + t * v1.double()).float()
    theta = math.acos(cos)
    out = (math.sin((1 - t) * theta) * v0.double() + math.sin(t * theta) * v1.double()) / math.sin(theta)
    return out.float()


def test_slerp_merge_equals_formula(tiny_base, tmp_path):
    # Large perturbations, so the tensors are far from parallel and slerp differs measurably from lerp.
    a, b = perturbed(tiny_base, tmp_path / "a", 3, 0.5), perturbed(tiny_base, tmp_path / "b", 4, 0.5)
    cfg = {"merge_method": "slerp", "dtype": "float32", "base_model": str(a),
           "models": [{"model": str(a)}, {"model": str(b)}], "parameters": {"t": 0.3}}
    out = run(write(tmp_path, cfg), tmp_path / "merged")
    wa, wb, wm = weights(a), weights(b), weights(out)
    assert wm.keys() == wa.keys()
    far_from_lerp = 0
    for k in wa:
        expected = slerp_reference(0.3, wa[k], wb[k])
        assert torch.allclose(wm[k], expected, atol=1e-5), (k, (wm[k] - expected).abs().max())
        far_from_lerp += (expected - (0.7 * wa[k] + 0.3 * wb[k])).abs().max().item() > 1e-3
    assert far_from_lerp >= len(wa) // 2  # the test would catch a lerp posing as slerp


def test_task_arithmetic_equals_base_plus_scaled_deltas(family, tmp_path):
    base, a, b = family["base"], family["sft-domain"], family["sft-safety"]
    cfg = {"merge_method": "task_arithmetic", "dtype": "float32", "base_model": str(base),
           "models": [{"model": str(a), "parameters": {"weight": 0.6}},
                      {"model": str(b), "parameters": {"weight": 0.3}}]}
    out = run(write(tmp_path, cfg), tmp_path / "merged")
    w0, wa, wb, wm = weights(base), weights(a), weights(b), weights(out)
    for k in w0:
        assert torch.allclose(wm[k], w0[k] + 0.6 * (wa[k] - w0[k]) + 0.3 * (wb[k] - w0[k]), atol=1e-5), k
    assert json.loads((out / "manifest.json").read_text())["parents"] == [str(base.resolve())]


def ties_reference(base, deltas_and_params, normalize=True):
    """TIES from its definition: trim each task vector to its `density` largest magnitudes, weight it, elect each
    parameter's sign by the sum of the weighted deltas (ties go to +), keep the deltas that agree with it and take
    their weight-normalised mean (mergekit's disjoint mean; a parameter no delta agrees on stays at the base)."""
    trimmed, weights = [], []
    for delta, weight, density in deltas_and_params:
        flat = delta.flatten().double()
        k = max(1, int(density * flat.numel())) if density < 1 else flat.numel()
        keep = torch.zeros_like(flat, dtype=torch.bool)
        keep[flat.abs().topk(k).indices] = True
        trimmed.append(weight * torch.where(keep, flat, 0.0))
        weights.append(weight)
    stacked = torch.stack(trimmed)
    elected = torch.where(stacked.sum(0) >= 0, 1.0, -1.0)
    agree = (stacked.sign() == elected)
    total = (stacked * agree).sum(0)
    if normalize:
        divisor = (torch.tensor(weights, dtype=torch.float64)[:, None] * agree).sum(0)
        total = total / torch.where(divisor == 0, 1.0, divisor)
    return (base.double() + total.reshape(base.shape)).float()


def test_ties_merge_equals_trim_elect_disjoint_mean(family, tmp_path):
    base, a, b = family["base"], family["sft-domain"], family["sft-safety"]
    cfg = {"merge_method": "ties", "dtype": "float32", "base_model": str(base),
           "models": [{"model": str(a), "parameters": {"weight": 1.0, "density": 0.5}},
                      {"model": str(b), "parameters": {"weight": 0.4, "density": 0.3}}]}
    out = run(write(tmp_path, cfg), tmp_path / "merged")
    w0, wa, wb, wm = weights(base), weights(a), weights(b), weights(out)
    assert wm.keys() == w0.keys()
    differs = {"task_arithmetic": 0, "untrimmed": 0}
    for k in w0:
        da, db = wa[k] - w0[k], wb[k] - w0[k]
        expected = ties_reference(w0[k], [(da, 1.0, 0.5), (db, 0.4, 0.3)])
        assert torch.allclose(wm[k], expected, atol=1e-6), (k, (wm[k] - expected).abs().max())
        # The reference is not something simpler in disguise: trimming and the election both change the result.
        differs["task_arithmetic"] += not torch.allclose(expected, w0[k] + da + 0.4 * db, atol=1e-4)
        differs["untrimmed"] += not torch.allclose(expected, ties_reference(w0[k], [(da, 1.0, 1), (db, 0.4, 1)]),
                                                   atol=1e-4)
    assert min(differs.values()) == len(w0), differs
    # Trimmed: about half of each weight matrix is left at the base where neither specialist kept a delta.
    q = wm["model.layers.0.self_attn.q_proj.weight"] == w0["model.layers.0.self_attn.q_proj.weight"]
    assert 0.5 * 0.7 - 0.05 < q.double().mean() < 0.5 * 0.7 + 0.05


def test_dare_drops_at_random_and_rescales_what_it_keeps(family, tmp_path):
    base, a = family["base"], family["sft-domain"]
    cfg = {"merge_method": "dare_linear", "dtype": "float32", "base_model": str(base),
           "models": [{"model": str(a), "parameters": {"weight": 0.8, "density": 0.3}}]}
    # Not seed 0 or 1: those are the seeds of the specialists' noise, and a Bernoulli mask drawn from the same torch
    # stream as that noise keeps the small deltas more often (the kept L1 share comes out 1/4.4, not 0.3).
    out = run(write(tmp_path, cfg), tmp_path / "merged", seed=5)
    w0, wa, wm = weights(base), weights(a), weights(out)
    kept_total = n_total = 0
    for k in w0:
        delta, moved = (wa[k] - w0[k]).double(), (wm[k] - w0[k]).double()
        kept = moved != 0
        # Every entry is either dropped (left at the base) or kept, and every kept entry is rescaled by the same
        # factor: the task vector's L1 norm over the kept entries' (mergekit's DARE rescale), times the weight.
        scale = delta.abs().sum() / delta[kept].abs().sum()
        assert torch.allclose(moved, torch.where(kept, 0.8 * scale * delta, 0.0), atol=1e-5), k
        kept_total, n_total = kept_total + int(kept.sum()), n_total + kept.numel()
        if kept.numel() >= 4096:  # a Bernoulli(0.3) draw per entry: within 5 standard deviations
            assert abs(kept.double().mean() - 0.3) < 5 * math.sqrt(0.3 * 0.7 / kept.numel()), k
            assert 1 / 0.3 * 0.85 < scale < 1 / 0.3 * 1.15, k
    assert abs(kept_total / n_total - 0.3) < 0.01


def test_dare_ties_at_full_density_is_the_sign_elected_sum(family, tmp_path):
    # Nothing dropped (density 1): dare_ties is the TIES sign election without trimming and, by mergekit's default
    # for this method, without the normalising divide.
    base, a, b = family["base"], family["sft-domain"], family["sft-safety"]
    cfg = {"merge_method": "dare_ties", "dtype": "float32", "base_model": str(base),
           "models": [{"model": str(a), "parameters": {"weight": 0.7, "density": 1.0}},
                      {"model": str(b), "parameters": {"weight": 0.5, "density": 1.0}}]}
    out = run(write(tmp_path, cfg), tmp_path / "merged", seed=0)
    w0, wa, wb, wm = weights(base), weights(a), weights(b), weights(out)
    for k in w0:
        expected = ties_reference(w0[k], [(wa[k] - w0[k], 0.7, 1), (wb[k] - w0[k], 0.5, 1)], normalize=False)
        assert torch.allclose(wm[k], expected, atol=1e-6), k
        assert not torch.allclose(expected, w0[k] + 0.7 * (wa[k] - w0[k]) + 0.5 * (wb[k] - w0[k]), atol=1e-4), k


def localized(path: Path, family: dict, tmp_path: Path) -> Path:
    """A shipped config with its demo-out/ model paths pointed at the tiny family."""
    text = path.read_text()
    for name, p in family.items():
        text = text.replace(f"demo-out/{name}", str(p))
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "demo-out/" not in body, "a shipped config names a model the test family lacks"
    dst = tmp_path / path.name
    dst.write_text(text)
    return dst


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_config_merges_tiny_models(path, family, tmp_path):
    out = run(localized(path, family, tmp_path), tmp_path / "merged", seed=0)
    parents = {n: weights(p) for n, p in family.items()}
    merged = weights(out)
    assert merged.keys() == parents["base"].keys()
    for k, v in merged.items():
        assert v.shape == parents["base"][k].shape and torch.isfinite(v).all(), k
    for name in ("sft-domain", "sft-safety"):  # a real blend: not a copy of either specialist
        assert any(not torch.equal(merged[k], parents[name][k]) for k in merged), name
    m = json.loads((out / "manifest.json").read_text())
    assert m["stage"] == "merge" and m["merge_method"] == yaml.safe_load(path.read_text())["merge_method"]
    assert (out / "tokenizer.json").is_file()


def test_dare_seed_makes_random_drops_reproducible(family, tmp_path):
    cfg = localized(REPO / "merge_configs" / "dare_ties-demo.yaml", family, tmp_path)
    first, again, other = (weights(run(cfg, tmp_path / f"o{i}", seed=s)) for i, s in enumerate((1, 1, 2)))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def _edit_json(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


@pytest.fixture
def odd_models(family, tmp_path):
    """Copies of a specialist whose config.json or tokenizer.json disagrees with the others."""
    wide = tmp_path / "wide"
    shutil.copytree(family["sft-safety"], wide)
    _edit_json(wide / "config.json", lambda c: c.update(hidden_size=128))
    deep = tmp_path / "deep"
    shutil.copytree(family["sft-safety"], deep)
    _edit_json(deep / "config.json", lambda c: c.update(num_hidden_layers=3))
    retok = tmp_path / "retok"
    shutil.copytree(family["sft-safety"], retok)

    def swap(t):  # same size, two tokens trade ids: shapes match, text would not
        vocab = t["model"]["vocab"]
        x, y = sorted(vocab)[100:102]
        vocab[x], vocab[y] = vocab[y], vocab[x]
    _edit_json(retok / "tokenizer.json", swap)
    return {"wide": wide, "deep": deep, "retok": retok}


def m(path, **params):
    return {"model": str(path), **({"parameters": params} if params else {})}


BAD = {
    "unknown_method": (lambda f, o: {"merge_method": "lineer", "models": [m(f["sft-domain"])]},
                       r"field 'merge_method': unknown method 'lineer'; allowed: .*linear.*slerp"),
    "missing_path": (lambda f, o: {"merge_method": "linear", "models": [m(f["sft-domain"], weight=1),
                                                                        m("/nowhere/x", weight=1)]},
                     r"model: file not found: /nowhere/x/config.json"),
    "architecture": (lambda f, o: {"merge_method": "linear", "models": [m(f["sft-domain"], weight=1),
                                                                        m(o["wide"], weight=1)]},
                     r"field 'models\[1\]\.model': architecture mismatch: .*wide has hidden_size=128 but .* has hidden_size=64"),
    "layers": (lambda f, o: {"merge_method": "ties", "base_model": str(f["base"]),
                             "models": [m(f["sft-domain"], weight=1), m(o["deep"], weight=1)]},
               r"field 'models\[1\]\.model': architecture mismatch: .*num_hidden_layers=3"),
    "tokenizer": (lambda f, o: {"merge_method": "linear", "models": [m(f["sft-domain"], weight=1),
                                                                     m(o["retok"], weight=1)]},
                  r"field 'models\[1\]\.model': tokenizer mismatch: .*2 token ids map to different tokens.*tokenizer_source"),
    "slerp_three": (lambda f, o: {"merge_method": "slerp", "base_model": str(f["base"]), "parameters": {"t": 0.5},
                                  "models": [m(f["base"]), m(f["sft-domain"]), m(f["sft-safety"])]},
                    r"field 'models': method 'slerp' merges exactly 2 models \(base_model included\), got 3"),
    "ties_no_base": (lambda f, o: {"merge_method": "ties", "models": [m(f["sft-domain"], weight=1, density=0.5),
                                                                      m(f["sft-safety"], weight=1, density=0.5)]},
                     r"field 'base_model': method 'ties' needs a base_model"),
    "della_no_base": (lambda f, o: {"merge_method": "della", "models": [m(f["sft-domain"], weight=1)]},
                      r"field 'base_model': method 'della' needs a base_model"),
    "model_stock_two": (lambda f, o: {"merge_method": "model_stock", "base_model": str(f["base"]),
                                      "models": [m(f["sft-domain"])]},
                        r"field 'models': method 'model_stock' merges at least 3 models"),
    "linear_no_weight": (lambda f, o: {"merge_method": "linear", "models": [m(f["sft-domain"], weight=1),
                                                                            m(f["sft-safety"])]},
                         r"field 'models\[1\]': method 'linear' needs parameter 'weight'"),
    "slerp_no_t": (lambda f, o: {"merge_method": "slerp", "base_model": str(f["sft-domain"]),
                                 "models": [m(f["sft-domain"]), m(f["sft-safety"])]},
                   r"field 'parameters': method 'slerp' needs parameter 't'"),
}


@pytest.mark.parametrize("case", BAD, ids=str)
def test_validation_error_is_one_line_naming_file_and_field(case, family, odd_models, tmp_path, monkeypatch):
    make, pattern = BAD[case]
    cfg = write(tmp_path, make(family, odd_models))
    import mergekit.merge

    def no_tensors(*a, **k):
        raise AssertionError("run_merge was reached: validation must fail before any tensor is read")
    monkeypatch.setattr(mergekit.merge, "run_merge", no_tensors)
    with pytest.raises(UserError, match=pattern) as err:
        run(cfg, tmp_path / "out")
    assert "\n" not in str(err.value) and str(err.value).startswith(str(cfg))
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.partial").exists()


def test_tokenizer_source_lets_mergekit_align_vocabularies(family, odd_models, tmp_path):
    from shipit.merge.run import load_merge_config

    cfg = {"merge_method": "linear", "tokenizer_source": "base", "base_model": str(family["sft-domain"]),
           "models": [m(family["sft-domain"], weight=1), m(odd_models["retok"], weight=1)]}
    assert load_merge_config(write(tmp_path, cfg)).tokenizer_source is not None


def test_cli_merge_and_one_line_error(family, tmp_path, monkeypatch, capsys):
    from shipit.cli import main

    good = localized(REPO / "merge_configs" / "linear-demo.yaml", family, tmp_path)
    monkeypatch.setattr(sys, "argv", ["shipit", "merge", str(good), "--out", str(tmp_path / "cli-out")])
    main()
    assert "merged:" in capsys.readouterr().out and (tmp_path / "cli-out" / "manifest.json").is_file()
    monkeypatch.chdir(tmp_path)  # without --out: merged/CONFIG-NAME
    monkeypatch.setattr(sys, "argv", ["shipit", "merge", str(good)])
    main()
    assert json.loads((tmp_path / "merged" / "linear-demo" / "manifest.json").read_text())["merge_method"] == "linear"
    bad = write(tmp_path, {"merge_method": "ties", "models": [m(family["sft-domain"], weight=1)]}, "bad.yaml")
    monkeypatch.setattr(sys, "argv", ["shipit", "merge", str(bad), "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "bad.yaml: field 'base_model':" in err
