"""Multi-process training: `accelerate launch` with two processes on CPU (DDP over gloo) for every TRL stage.

Each launch takes 15-30 s on 2 cores; the module is marked slow.

accelerate's `--cpu` flag launches ONE process however many `--num_processes` asks for (several CPU processes
need mpirun); `--multi_gpu` launches them through torchrun, and on a machine without CUDA the trainer's
`use_cpu` makes them a gloo process group. So these tests launch with `--multi_gpu`, as a CPU-only user must.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from shipit.demo.world import DATA_DIR
from shipit.models.vllm_server import free_port
from shipit.registry import partial_dir

REPO = Path(__file__).resolve().parent.parent
STEPS = 12
TRAINER = dict(max_steps=STEPS, save_steps=2, logging_steps=1, learning_rate=3e-3, warmup_steps=0,
               per_device_train_batch_size=4)


def launch_cmd(stage: str, recipe: Path, processes: int = 2) -> list[str]:
    """`accelerate launch` of `shipit train STAGE RECIPE` on `processes` CPU processes (torchrun, gloo)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port()), "-m", "shipit", "train", stage, str(recipe)]


def env() -> dict:
    # One thread per rank: two ranks on two cores; more threads only fight over them.
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def run_launch(cmd: list[str], timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=timeout_s)


def ranks_of(recipe: Path) -> list[int]:
    """Live processes running `shipit train` on `recipe` (the launch's ranks)."""
    found = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and f"\0{recipe}\0".encode() in (p / "cmdline").read_bytes() + b"\0" and \
                    (p / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(p.name))
        except OSError:
            pass
    return found


def kill_launch_at_first_checkpoint(cmd: list[str], ckpts: Path, timeout_s: float = 300) -> None:
    """Run a launch in its own process group and SIGKILL the group at the first checkpoint both ranks finished
    (rank 0's trainer_state.json, rank 1's RNG state). torchrun starts each rank in a session of its own, out of that
    group: the ranks must die with their launcher, not train on as orphans into the partial output (before they
    did, and the resumed launch found their finished run instead of the checkpoint)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(),
                            start_new_session=True)
    deadline = time.time() + timeout_s
    done = lambda: any((c / "trainer_state.json").is_file() and (c / "rng_state_1.pth").is_file()  # noqa: E731
                       for c in ckpts.glob("checkpoint-*"))
    try:
        while time.time() < deadline and not done():
            assert proc.poll() is None, "the launch ended before it could be killed"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    gone = time.time() + 20
    while ranks_of(Path(cmd[-1])) and time.time() < gone:
        time.sleep(0.1)
    assert not ranks_of(Path(cmd[-1])), "the ranks outlived their launcher"


def recipe(stage: str, tiny_base: Path, out: Path, **trainer) -> dict:
    trainer = {**TRAINER, **trainer}
    pairs = [{"path": str(DATA_DIR / "preference_pairs.jsonl")}]
    return {
        "sft": dict(datasets=[{"path": str(DATA_DIR / "instructions.jsonl")}], eval_fraction=0),
        "cpt": dict(domain=[{"path": str(DATA_DIR / "domain_corpus.jsonl")}],
                    general=[{"path": str(DATA_DIR / "general_train.jsonl")}], mix_ratio="1:1",
                    domain_heldout=str(DATA_DIR / "domain_heldout.jsonl"),
                    general_heldout=str(DATA_DIR / "general_heldout.jsonl")),
        "dpo": dict(datasets=pairs, eval_fraction=0.05),
        "reward": dict(datasets=pairs, eval_fraction=0.05),
        # 2 ranks x 4 completions = 2 prompts x num_generations 4 per step
        "grpo": dict(prompts=[str(DATA_DIR / "instructions.jsonl")], reward_functions=["brevity"],
                     num_generations=4, max_completion_length=6),
    }[stage] | {"model": str(tiny_base), "output": str(out), "trainer": trainer}


def write_recipe(tmp_path: Path, name: str, cfg: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sft", "cpt", "dpo", "reward", "grpo"])
def test_two_process_launch_trains_one_output_and_resumes(stage, tiny_base, tmp_path):
    """Killed at its first checkpoint, a 2-process launch resumes with --resume and finishes: both ranks stepped
    together (each saved its RNG state in the checkpoint), rank 0 alone logged and wrote, and the output is a
    plain Hugging Face directory whose weights moved."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    from shipit.device import bf16_supported

    out = tmp_path / stage
    path = write_recipe(tmp_path, stage, recipe(stage, tiny_base, out))
    ckpts = partial_dir(out) / "checkpoints"
    kill_launch_at_first_checkpoint(launch_cmd(stage, path), ckpts)
    assert not out.exists(), "a killed launch must not leave an output that looks complete"
    done = sorted(int(p.parent.name.split("-")[1]) for p in ckpts.glob("checkpoint-*/trainer_state.json"))
    first = done[0]
    # The trainer writes rng_state_{rank}.pth per process: two files mean two ranks trained as one DDP job.
    assert sorted(p.name for p in (ckpts / f"checkpoint-{first}").glob("rng_state*")) == \
        ["rng_state_0.pth", "rng_state_1.pth"]
    assert json.loads((ckpts / f"checkpoint-{first}" / "trainer_state.json").read_text())["global_step"] == first

    r = run_launch(launch_cmd(stage, path) + ["--resume"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resume: from checkpoint-{done[-1]}\n" in r.stderr, r.stderr[-3000:]
    assert not partial_dir(out).exists()
    m = json.loads((out / "manifest.json").read_text())
    assert m["metrics"]["steps"] == STEPS
    assert set(m["files"]) == {p.name for p in out.iterdir() if p.name != "manifest.json"}
    assert not any(p.name.startswith("checkpoint") or p.name == "checkpoints" for p in out.iterdir())
    logged = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    # Rank 0 alone logs: steps up to the checkpoint once each (a second rank logging would double them), and the
    # resumed run continued from there to the end.
    assert all(logged.count(s) == 1 for s in range(1, done[-1] + 1)), logged
    assert set(range(1, STEPS + 1)) <= set(logged) and logged[-1] == STEPS

    args = torch.load(out / "training_args.bin", weights_only=False)
    # Two ranks, each in bf16 autocast where the CPU has native bf16 (as a one-process run would be)
    assert args.world_size == 2 and args.bf16 == bf16_supported()

    architecture = AutoConfig.from_pretrained(out).architectures[0]
    loader = AutoModelForSequenceClassification if stage == "reward" else AutoModelForCausalLM
    assert architecture == ("LlamaForSequenceClassification" if stage == "reward" else "LlamaForCausalLM")
    loader.from_pretrained(out)  # loads as a plain HF model
    before, after = load_file(tiny_base / "model.safetensors"), load_file(out / "model.safetensors")
    moved = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert len(moved) > 0.9 * len(before)


@pytest.mark.slow
def test_two_ranks_of_4_train_the_same_model_as_one_process_of_8(tiny_base, tmp_path):
    """Gradients are all-reduced: DPO by 2 ranks x 4 pairs gives the model that 1 process x 8 pairs gives on the
    same data (the distributed sampler deals each step's 8 pairs out 4 and 4), while rank 0 training on its own 4
    pairs would drift from it by as much as a step moves the weights. (DPO, not the reward model: its new score
    head is initialised at random, differently in the two runs.)"""
    from shipit.train import get_stage

    settings = dict(max_steps=3, save_steps=100, bf16=False)  # float32: the two runs differ by summation order only
    r = run_launch(launch_cmd("dpo", write_recipe(tmp_path, "ddp", recipe("dpo", tiny_base, tmp_path / "ddp",
                                                                           **settings))))
    assert r.returncode == 0, r.stderr[-3000:]
    stage = get_stage("dpo")
    single = recipe("dpo", tiny_base, tmp_path / "one", **{**settings, "per_device_train_batch_size": 8})
    stage.run(stage.Config.model_validate(single))
    ddp, one = load_file(tmp_path / "ddp" / "model.safetensors"), load_file(tmp_path / "one" / "model.safetensors")
    base = load_file(tiny_base / "model.safetensors")

    def mean_gap(a: dict, b: dict) -> float:
        return torch.cat([(a[k].float() - b[k].float()).abs().flatten() for k in base]).mean().item()

    # Measured: one step moves a weight by 4.8e-3 on average; the two runs differ by 3e-9 (summation order), and
    # one process of 4 pairs (what an un-reduced rank 0 computes) differs from them by 2.3e-3.
    moved, apart = mean_gap(one, base), mean_gap(one, ddp)
    assert moved > 1e-3 and apart < moved * 1e-4, (moved, apart)
    got, want = (json.loads((tmp_path / name / "manifest.json").read_text())["metrics"] for name in ("ddp", "one"))
    assert got["steps"] == want["steps"] == 3
    # Held-out preference is scored over every held-out pair, not over rank 0's shard of them
    for key in ("eval_margin_before", "eval_accuracy_before", "eval_margin", "eval_accuracy"):
        assert got[key] == pytest.approx(want[key], abs=2e-4), key


@pytest.mark.slow
def test_ppo_refuses_a_multi_process_launch(tiny_base, tmp_path):
    """shipit's PPO has no distributed code: under a 2-process launch each rank says so in one line and exits 2,
    before any output is started."""
    cfg = {"model": str(tiny_base), "output": str(tmp_path / "ppo"), "reward_functions": ["brevity"],
           "prompts": [str(DATA_DIR / "instructions.jsonl")], "ppo": {"iterations": 1}}
    r = run_launch(launch_cmd("ppo", write_recipe(tmp_path, "ppo", cfg)), timeout_s=120)
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: train ppo:")]
    # Each rank refuses; torchrun SIGTERMs the other rank once the first exits 2, so on a loaded machine the slower
    # rank may be stopped before it prints (CI saw one line at load ~8).
    assert errors and len(errors) <= 2, r.stderr[-3000:]
    assert all("runs in one process, and this launch has 2" in e for e in errors), r.stderr[-3000:]
    assert "exitcode  : 2" in r.stderr  # torchrun's summary of the failed rank
    assert not (tmp_path / "ppo").exists() and not partial_dir(tmp_path / "ppo").exists()


def test_fsdp_config_saves_a_full_state_dict(monkeypatch):
    """train/accelerate/fsdp.yaml, read by accelerate's own launcher, makes the FSDP plugin gather a full state dict:
    the Trainer's save_model (which `save_trained` calls on every rank) writes a plain HF model only then; with
    SHARDED_STATE_DICT it writes per-rank shards. (FSDP does not run on CPU: accelerate turns it on for GPU-class
    process groups only, and on gloo it silently trains as DDP, so the launch itself is checked on GPUs.)"""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import FullyShardedDataParallelPlugin, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(REPO / "train/accelerate/fsdp.yaml"),
                                               "-m", "shipit", "train", "sft", "recipe.yaml"])
    args, _, _ = _validate_launch_command(args)
    env = prepare_multi_gpu_env(args)
    assert args.use_fsdp and env["ACCELERATE_USE_FSDP"] == "true"
    for key, value in env.items():
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert "FULL_STATE_DICT" in str(plugin.state_dict_type) and plugin.fsdp_version == 2


def test_deepspeed_is_pinned_where_its_config_is_shipped():
    """train/accelerate/deepspeed_zero3.yaml needs deepspeed: the `deepspeed` extra names it and the pins give it one
    version (an unpinned DeepSpeed is the likeliest thing to break a ZeRO-3 run after an upgrade)."""
    import tomllib

    assert (REPO / "train/accelerate/deepspeed_zero3.yaml").exists()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = [line for line in (REPO / "requirements/core.txt").read_text().splitlines()
            if line.startswith("deepspeed==")]
    assert extras["deepspeed"] == pins == ["deepspeed==0.19.8"]


def test_a_rank_leaves_its_process_group_before_it_exits(monkeypatch, tmp_path):
    """`shipit train` ends a launch's process group itself: left to the interpreter's exit, a gloo rank sometimes
    aborted (SIGABRT, "terminate called without an active exception") after it had trained and written, and the launch
    failed (CI, the reward launch above). A plain run has no group and nothing to end."""
    import torch.distributed as dist

    from shipit.registry import leave_process_group

    leave_process_group()  # a plain run: no group, no error
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under a launch; the group here has one member
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        leave_process_group()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
