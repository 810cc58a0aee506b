"""llm-compressor quantization, verified against its source before it is marked done."""

from __future__ import annotations

import json

import pytest

from shipit.errors import UserError
from shipit.quantize.run import run
from shipit.registry import partial_dir


def test_w8a8_is_smaller_close_to_source_and_verified(tiny_base, tmp_path):
    out = run("w8a8", tiny_base, tmp_path / "q")
    m = json.loads((out / "manifest.json").read_text())
    metrics = m["metrics"]
    assert metrics["generates"] is True
    assert abs(metrics["ppl_delta_pct"]) < 5 and metrics["max_logit_diff"] < 1.0
    assert metrics["size_ratio"] < 0.8
    qcfg = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qcfg["quant_method"] == "compressed-tensors"
    assert qcfg["config_groups"]["group_0"]["weights"]["num_bits"] == 8
    assert m["vllm_loadable"] is True and m["parents"] == [str(tiny_base.resolve())]


def test_w4a16_refuses_shapes_that_group_128_cannot_cover(tiny_base, tmp_path):
    with pytest.raises(UserError, match=r"hidden_size=64 is not a multiple of the group size 128; use method w8a8"):
        run("w4a16", tiny_base, tmp_path / "q4")
    assert not (tmp_path / "q4").exists() and not partial_dir(tmp_path / "q4").exists()
    with pytest.raises(UserError, match="unknown quantization method 'int3'; available: w4a16, w8a8"):
        run("int3", tiny_base, tmp_path / "q3")
