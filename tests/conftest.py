"""Shared fixtures: tiny models built locally, once per session; no hub access, ever."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("LLM_COMPRESSOR_LOG_LEVEL", "WARNING")
# Under `make test`'s workers (pytest-xdist) each worker, and what it starts, computes on one thread: two workers of
# two OpenMP threads each on two cores fight over them (a module's setup took 183 s beside another worker, 57 s
# alone). vLLM servers bind their own cores (shipit.models.vllm_server.split_cores).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
# The slowest modules, slowest first (their summed durations in a `make test` run): each module runs whole on one
# worker, so the suite ends no sooner than its longest module, which must start first; the rest keep collection order.
SLOWEST_FIRST = ["test_demo.py", "test_real_pipeline.py", "test_serve_faults.py", "test_data_engine_real.py",
                 "test_real_model.py", "test_distributed.py", "test_ship.py", "test_bench.py", "test_quantize.py",
                 "test_experiment.py", "test_data_engine.py", "test_router_vllm.py", "test_resume.py",
                 "test_bad_inputs.py", "test_train_stages.py"]
TINY = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=2)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a module's tests keep their order


def tiny_base_config(**pretrain):
    """BaseConfig for a 2-layer, hidden-64 model with a few pretraining steps."""
    from shipit.demo.base import BaseConfig
    from shipit.train.common import TrainerSettings

    settings = dict(learning_rate=3e-3, max_steps=12, warmup_steps=2, logging_steps=2, save_steps=6)
    return BaseConfig(**TINY, pretrain=TrainerSettings(**{**settings, **pretrain}))


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A tiny base model (tokenizer + Llama, hidden 64, 2 layers), built and briefly pretrained offline."""
    from shipit.demo.base import build_base

    return build_base(tiny_base_config(), tmp_path_factory.mktemp("models") / "base")


@pytest.fixture
def model_copy(tiny_base, tmp_path) -> Path:
    """A private copy of the tiny base model that a test may modify."""
    dst = tmp_path / "model"
    shutil.copytree(tiny_base, dst)
    return dst


@pytest.fixture
def labelled_4bit(model_copy) -> Path:
    """The tiny model's copy whose config.json says it has 4-bit weights and 16-bit activations (compressed-tensors
    W4A16, as `shipit quantize w4a16` writes it): enough for what reads the config, not for loading."""
    config = json.loads((model_copy / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "compressed-tensors", "config_groups": {"group_0": {
        "targets": ["Linear"], "weights": {"num_bits": 4, "group_size": 32}, "input_activations": None}}}
    (model_copy / "config.json").write_text(json.dumps(config))
    return model_copy


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The serving interpreter. Skips only when none is configured; `make test` sets SHIPIT_VLLM_PYTHON, so under
    make (and CI) a missing serving environment fails instead of skipping."""
    from shipit.errors import UserError
    from shipit.models.vllm_server import ENV_VAR, find_vllm_python

    try:
        return find_vllm_python()
    except UserError:
        if os.environ.get(ENV_VAR):
            raise
        pytest.skip("no serving environment (run `make serve-env` or set SHIPIT_VLLM_PYTHON)")


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct imported from its GGUF into the shipit cache (`make test` fetches it first; fetched
    here when missing). Shared by the session: never modify it."""
    from shipit.models.fetch import fetch_model

    return fetch_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def smol2(smollm2, tmp_path_factory) -> Path:
    """SmolLM2 cut to its first 2 layers: the real tokenizer, chat template, GQA shape and tied embeddings at
    35M parameters (28M of them the embeddings), written once per session."""
    from shipit.models.cut import truncate_layers

    return truncate_layers(smollm2, tmp_path_factory.mktemp("models") / "smol2", 2)


@pytest.fixture(scope="session")
def perturbed(tiny_base, tmp_path_factory):
    """A copy of the tiny base with noise added to every weight, so the two arms answer differently."""
    import torch
    from safetensors.torch import load_file, save_file

    dst = tmp_path_factory.mktemp("models") / "perturbed"
    shutil.copytree(tiny_base, dst)
    for f in dst.glob("*.safetensors"):
        gen = torch.Generator().manual_seed(0)
        tensors = {k: v + 3 * v.float().std() * torch.randn(v.shape, generator=gen).to(v.dtype)
                   for k, v in load_file(f).items()}
        save_file(tensors, f, metadata={"format": "pt"})
    return dst


def kill_at_first_checkpoint(cmd: list[str], ckpts: Path, timeout_s: float = 300) -> None:
    """Run `cmd`, and SIGKILL it as soon as a trainer checkpoint appears under `ckpts` (a crash mid-stage)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout_s
    while time.time() < deadline and not any(ckpts.glob("checkpoint-*/trainer_state.json")):
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
