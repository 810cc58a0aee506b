"""The inference dtype (bench, data engine generation, perplexity, merge-search scoring): bf16 where the hardware
computes in it natively, float32 elsewhere, a config's `dtype` or $SHIPIT_INFERENCE_DTYPE overriding."""

from __future__ import annotations

import pytest
import torch

from shipit import device
from shipit.bench.config import BenchConfig
from shipit.demo.world import DATA_DIR
from shipit.errors import UserError


@pytest.fixture
def cpu_with(monkeypatch):
    """Pretend to be a CPU-only machine with the given flags (and no override in the environment)."""

    def set_flags(*flags):
        monkeypatch.delenv(device.INFERENCE_DTYPE_ENV, raising=False)
        monkeypatch.setattr(device, "has_cuda", lambda: False)
        monkeypatch.setattr(device, "cpu_flags", lambda: set(flags))
    return set_flags


def test_the_dtype_follows_the_hardware_and_the_override_wins(cpu_with, monkeypatch, capsys):
    cpu_with("avx512f", "avx512_bf16")
    assert device.inference_dtype() is torch.bfloat16
    assert device.inference_dtype("float32") is torch.float32  # the config's switch turns it off
    monkeypatch.setenv(device.INFERENCE_DTYPE_ENV, "float32")
    assert device.inference_dtype() is torch.float32  # so does the environment's
    assert device.inference_dtype("bfloat16") is torch.bfloat16  # a config that names a dtype wins over it
    monkeypatch.setenv(device.INFERENCE_DTYPE_ENV, "fp16")
    with pytest.raises(UserError, match=r"^\$SHIPIT_INFERENCE_DTYPE='fp16' is not one of auto, float32, bfloat16"):
        device.inference_dtype()
    monkeypatch.delenv(device.INFERENCE_DTYPE_ENV)

    cpu_with("avx512f", "avx2")  # no native bf16: emulated bf16 is slower than float32
    assert device.inference_dtype() is torch.float32
    assert device.inference_dtype("bfloat16") is torch.bfloat16
    monkeypatch.setenv(device.INFERENCE_DTYPE_ENV, "bfloat16")
    assert device.inference_dtype() is torch.bfloat16

    cpu_with()
    monkeypatch.setattr(device, "has_cuda", lambda: True)  # a CUDA GPU decides by its own bf16 support
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setenv(device.INFERENCE_DTYPE_ENV, "bfloat16")
    assert device.inference_dtype() is torch.bfloat16  # the environment still wins
    monkeypatch.delenv(device.INFERENCE_DTYPE_ENV)
    assert device.inference_dtype() is torch.float32
    cpu_with("avx512_bf16")
    monkeypatch.setattr(device, "has_cuda", lambda: True)
    assert device.inference_dtype() is torch.float32  # the GPU computes, not the CPU
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert device.inference_dtype() is torch.bfloat16

    # Said once per choice and reason, on stderr, with the way to turn it off
    capsys.readouterr()
    cpu_with("amx_bf16")
    monkeypatch.setattr(device, "_logged", set())
    device.inference_dtype(), device.inference_dtype()
    err = capsys.readouterr().err
    assert err == ("inference dtype: bfloat16 (this CPU computes in bf16 natively; dtype: float32 or "
                   "SHIPIT_INFERENCE_DTYPE=float32 keeps float32)\n")


def test_every_inference_path_loads_in_the_chosen_dtype(cpu_with, tiny_base):
    """Evaluation (load_for_eval, hence bench and merge-search scoring) and the data engine's `hf` generator."""
    from shipit.data.generators import GeneratorSettings, make_generator
    from shipit.models.load import load_for_eval
    from shipit.ship.merge_search import SearchConfig

    for flags, auto in ((("avx512_bf16",), torch.bfloat16), (("avx2",), torch.float32)):
        cpu_with(*flags)
        assert load_for_eval(tiny_base)[0].dtype is auto
        for name in ("float32", "bfloat16"):
            assert load_for_eval(tiny_base, name)[0].dtype is getattr(torch, name)
            gen = make_generator(GeneratorSettings(model=tiny_base, dtype=name))
            assert gen.model.dtype is getattr(torch, name)
            gen.close()
        gen = make_generator(GeneratorSettings(model=tiny_base))
        assert gen.model.dtype is auto and gen.generate(["Hi"], max_new_tokens=2)[0] is not None
    fields = (BenchConfig.model_fields["dtype"], SearchConfig.model_fields["eval_dtype"])
    assert all(f.default == "auto" for f in fields)


def test_a_quantized_checkpoint_is_evaluated_in_the_inference_dtype(cpu_with, tiny_base, tmp_path):
    """A w4a16 checkpoint loads in the inference dtype like any candidate (the bench compares it with its source like
    for like); "checkpoint" (the quantize stage's own check) keeps the dtype its quantizer recorded, float32 here.
    In bf16 it computes what it does in float32: the int4 weights decompress into bf16, not into noise."""
    from shipit.models.load import load_for_eval
    from shipit.quantize.run import run

    q4 = run("w4a16", tiny_base, tmp_path / "q4")
    cpu_with("avx512_bf16")
    b16, f32 = load_for_eval(q4)[0], load_for_eval(q4, "checkpoint")[0]
    assert (b16.dtype, f32.dtype) == (torch.bfloat16, torch.float32)
    cpu_with("avx2")
    assert load_for_eval(q4)[0].dtype is torch.float32
    ids = torch.arange(5, 37).reshape(2, 16)
    with torch.no_grad():
        lb, lf = b16(ids).logits.float(), f32(ids).logits
    assert (lb - lf).abs().max() < 0.05 * lf.abs().max() and (lb.argmax(-1) == lf.argmax(-1)).float().mean() > 0.9


def test_bf16_bench_numbers_agree_with_float32(tiny_base, tmp_path):
    """The same candidate benched in float32 and in bfloat16: perplexities within 1% relative and multiple-choice
    accuracies within 0.05 absolute. Why those bounds: bf16 keeps 8 bits of mantissa, so each logit is off by up to
    ~0.4% of its size; the mean log-likelihood (what perplexity exponentiates) averages those errors, measured here
    at 0.04% relative. An accuracy moves only when a near-tie between choices flips: the barely trained tiny model
    has many near-ties, and 0.05 allows two of the 48 held-out questions to flip (measured: none did)."""
    res = {}
    for dtype in ("float32", "bfloat16"):
        cfg = BenchConfig(data_dir=DATA_DIR, models={"a": tiny_base}, tasks=["general_ppl", "domain_ppl", "domain_qa"],
                          efficiency={"prompts": 1, "max_new_tokens": 2}, dtype=dtype, output=tmp_path / dtype)
        from shipit.bench.run import run

        res[dtype] = run(cfg)["results"]["a"]
        assert res[dtype]["efficiency"]["dtype"] == dtype
    f32, b16 = res["float32"], res["bfloat16"]
    for task in ("general_ppl", "domain_ppl"):
        assert b16[task]["ppl"] == pytest.approx(f32[task]["ppl"], rel=0.01), task
    assert b16["general_ppl"]["ppl"] != f32["general_ppl"]["ppl"]  # it did compute in bf16
    for metric in ("mc_accuracy", "cloze_accuracy"):
        assert abs(b16["domain_qa"][metric] - f32["domain_qa"][metric]) <= 0.05, metric


def test_merge_search_scores_candidates_in_its_eval_dtype(tiny_base, tmp_path):
    """`eval_dtype` reaches the scoring: the same candidate scores differently (and nearly alike) in the two dtypes."""
    from shipit.ship.merge_search import SearchConfig, bench_objective

    ppl = {}
    for dtype in ("float32", "bfloat16"):
        cfg = SearchConfig(models=[tiny_base], objectives=[{"task": "general_ppl", "metric": "ppl",
                                                            "direction": "minimize"}],
                           eval_dtype=dtype, output=tmp_path / "out")
        ppl[dtype] = bench_objective(cfg)(tiny_base, {})["general_ppl.ppl"]
    assert ppl["bfloat16"] != ppl["float32"] and ppl["bfloat16"] == pytest.approx(ppl["float32"], rel=0.01)
