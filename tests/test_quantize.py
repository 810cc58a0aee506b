"""llm-compressor quantization, verified against its source before it is marked done."""

from __future__ import annotations

import json

import pytest

from shipit.errors import UserError
from shipit.quantize.run import run
from shipit.registry import partial_dir


@pytest.mark.slow
def test_w8a8_is_smaller_close_to_source_and_verified(tiny_base, tmp_path):
    out = run("w8a8", tiny_base, tmp_path / "q", backend="vllm-cpu")
    m = json.loads((out / "manifest.json").read_text())
    metrics = m["metrics"]
    assert metrics["generates"] is True
    assert abs(metrics["ppl_delta_pct"]) < 5 and metrics["max_logit_diff"] < 1.0
    assert metrics["size_ratio"] < 0.8
    qcfg = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qcfg["quant_method"] == "compressed-tensors"
    assert qcfg["config_groups"]["group_0"]["weights"]["num_bits"] == 8
    assert m["servable"] is True and m["parents"] == [str(tiny_base.resolve())]


def test_w4a16_refuses_shapes_that_group_128_cannot_cover(tiny_base, tmp_path):
    with pytest.raises(UserError, match=r"hidden_size=64 is not a multiple of the group size 128; use method w8a8"):
        run("w4a16", tiny_base, tmp_path / "q4")
    assert not (tmp_path / "q4").exists() and not partial_dir(tmp_path / "q4").exists()
    with pytest.raises(UserError, match="unknown quantization method .int3.; available: w4a16, w8a8, fp8, onnx-int8"):
        run("int3", tiny_base, tmp_path / "q3")


def test_fp8_output_is_verified_and_servable(tiny_base, tmp_path):
    out = run("fp8", tiny_base, tmp_path / "fp8", backend="vllm-cpu")
    m = json.loads((out / "manifest.json").read_text())
    assert m["metrics"]["generates"] and abs(m["metrics"]["ppl_delta_pct"]) < 5
    assert m["servable"] is True and "vllm-cpu" in m["servable_by"]
    qcfg = json.loads((out / "config.json").read_text())["quantization_config"]["config_groups"]["group_0"]
    assert qcfg["weights"]["type"] == "float" and qcfg["weights"]["num_bits"] == 8


def test_onnx_int8_runs_in_onnxruntime_and_is_flagged_unservable_for_vllm(tiny_base, tmp_path, capfd):
    from shipit.models.ort_model import OrtCausalLM
    from shipit.models.vllm_server import VLLMServer

    out = run("onnx-int8", tiny_base, tmp_path / "onnx", backend="vllm-cpu")
    err = capfd.readouterr().err
    assert "warning: onnx-int8 output cannot be served by the configured backend 'vllm-cpu'" in err
    m = json.loads((out / "manifest.json").read_text())
    assert m["servable"] is False and m["servable_by"] == ["onnxruntime"]
    assert m["metrics"]["eval_backend"] == "onnxruntime" and m["metrics"]["max_logit_diff"] < 1.0
    assert m["metrics"]["size_ratio"] < 0.8 and (out / "model.onnx").exists()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    tok.padding_side = "left"
    enc = tok(["The cat sat", "A much longer prompt about the dog"], return_tensors="pt", padding=True)
    ort_ids = OrtCausalLM(out).generate(**enc, max_new_tokens=5, pad_token_id=tok.pad_token_id)
    hf = AutoModelForCausalLM.from_pretrained(tiny_base)
    hf_ids = hf.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    # int8 weights barely move greedy choices on this model: left padding and positions are handled like HF's
    assert (ort_ids[:, -5:] == hf_ids[:, -5:]).float().mean() >= 0.8
    with pytest.raises(UserError, match="is an ONNX model \\(onnx-int8\\); vLLM cannot load it"):
        VLLMServer(out).start()
    assert torch.is_tensor(ort_ids)
