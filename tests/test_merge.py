"""mergekit through its Python API: merged tensors equal the formula; bad configs fail before any tensor is read."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from shipit.errors import UserError
from shipit.merge.run import run


@pytest.fixture
def two_models(tiny_base, tmp_path):
    """Two copies of the tiny base whose weights are perturbed differently."""
    import shutil

    paths = []
    for i in range(2):
        dst = tmp_path / f"m{i}"
        shutil.copytree(tiny_base, dst)
        g = torch.Generator().manual_seed(i)
        w = load_file(dst / "model.safetensors")
        save_file({k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in w.items()}, dst / "model.safetensors",
                  metadata={"format": "pt"})
        (dst / "manifest.json").unlink()
        paths.append(dst)
    return paths


def write(tmp_path, cfg):
    p = tmp_path / "merge.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_linear_merge_equals_weighted_average(two_models, tmp_path):
    a, b = two_models
    cfg = {"merge_method": "linear", "dtype": "float32",
           "models": [{"model": str(a), "parameters": {"weight": 0.3}}, {"model": str(b), "parameters": {"weight": 0.7}}]}
    out = run(write(tmp_path, cfg), tmp_path / "merged")
    wa, wb, wm = (load_file(p / "model.safetensors") for p in (a, b, out))
    assert wm.keys() == wa.keys()
    for k in wa:
        assert torch.allclose(wm[k], 0.3 * wa[k] + 0.7 * wb[k], atol=1e-5), k
        assert not torch.isnan(wm[k]).any()
    m = json.loads((out / "manifest.json").read_text())
    assert m["merge_method"] == "linear" and sorted(m["inputs"]) == ["model0", "model1"]
    assert (out / "tokenizer.json").exists()


def test_merge_validation_errors(two_models, tmp_path):
    a, b = two_models
    with pytest.raises(UserError, match=r"field 'merge_method': unknown method 'lineer'; allowed: .*linear.*slerp"):
        run(write(tmp_path, {"merge_method": "lineer", "models": [{"model": str(a)}]}), tmp_path / "o")
    with pytest.raises(UserError, match=r"model: file not found: .*nowhere/config.json"):
        run(write(tmp_path, {"merge_method": "linear",
                             "models": [{"model": str(a)}, {"model": str(tmp_path / "nowhere")}]}), tmp_path / "o")
    assert not (tmp_path / "o").exists()
