"""SFT on a real checkpoint (SmolLM2-135M-Instruct): bf16 vs float32, and shipit vs plain TRL + peft, in one run.

Part `speed`: LoRA SFT and full SFT through shipit's trainer, bf16 autocast vs float32, tokens/s after a warm-up, each
with its model FLOPs utilisation (MFU) against the GEMM peak measured in the same run (2048x2048 matmul on a CPU,
8192x8192 on CUDA; float32 and bf16). Target: bf16 / float32 >= 1.8x.

    MFU = achieved model FLOP/s / measured GEMM peak FLOP/s of the same dtype
    full SFT: model FLOP/s = 6 * N * tokens/s        (forward 2N, backward 4N: input and weight gradients)
    LoRA SFT: model FLOP/s ~ 4 * N * tokens/s        (forward 2N, backward 2N: input gradients only, the frozen
                                                      weights get none; the rank-16 adapters add < 3%, left out)
    N = parameters counted once (the tied embedding is the lm_head matmul); attention scores (6 * layers * hidden *
    seq per token, ~1.6% at 128 tokens) are left out, as is usual.

Part `trl`: shipit LoRA SFT vs plain TRL SFTTrainer + peft on the same bf16 config (batch, length, packing, LoRA
r/alpha/targets, lr); each run in its own subprocess (clean peak RSS), alternating, medians. Targets: tokens/s ratio
>= 0.98, peak RSS ratio <= 1.05. Tokens are TRL's `num_tokens` (every input token, masked or not) between the end of
the warm-up steps and the last step, timed by a callback, so loading and dataset preparation are outside the window.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_bf16.py [--model DIR] [--part speed|trl|all] [--steps 8]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "src" / "shipit" / "demo" / "data"
MODEL = Path.home() / ".cache" / "shipit" / "models" / "smollm2-135m-instruct"
FILES = ["instructions.jsonl", "domain_qa_train.jsonl", "safety_sft.jsonl"]
LORA = dict(r=16, alpha=32, dropout=0.05)


def load() -> str:
    return "load %.1f/%.1f/%.1f" % os.getloadavg()


def gemm_peak(dtype_name: str, n: int = 2048, reps: int = 10) -> float:
    """GFLOP/s of an n x n matmul in this dtype on the training device (best of `reps`, after a warm-up)."""
    import torch

    from shipit.device import torch_device

    dev = torch_device()
    n = 8192 if dev == "cuda" else n  # a 2048 matmul is over in ~25 us on a big GPU: launch overhead, not the peak
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, dtype=dtype, device=dev), torch.randn(n, n, dtype=dtype, device=dev)
    for _ in range(2):
        a @ b
    sync()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def timer(warmup: int):
    """A TrainerCallback recording when the warm-up ended and when the last step ended."""
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        t0 = t1 = None

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == warmup:
                self.t0 = time.perf_counter()
            self.t1 = time.perf_counter()

    return Timer()


def child(kind: str, mode: str, bf16: bool, model: str, warmup: int, steps: int, work: str, batch: int = 8,
          length: int = 128) -> None:
    """One measured training run; prints a JSON line."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from shipit.formats.mix import DatasetSpec, load_mix
    from shipit.train.common import LoraSettings, TrainerSettings, trl_kwargs

    s = TrainerSettings(learning_rate=1e-4, max_steps=warmup + steps, per_device_train_batch_size=batch,
                        max_length=length,
                        warmup_steps=0, logging_steps=1, save_steps=10_000, bf16=bf16)
    rows = load_mix([DatasetSpec(path=DATA / f) for f in FILES], seed=0)
    peft = LoraSettings(**LORA) if mode == "lora" else None
    clock = timer(warmup)
    if kind == "shipit":  # shipit's own path: load_model, tokenizer, answer-only masks, TRL config, LoRA
        from shipit.train.common import load_model, training_tokenizer
        from shipit.train.sft import make_trainer

        trainer = make_trainer(load_model(Path(model), peft), training_tokenizer(Path(model)), rows, [], s,
                               Path(work), peft=peft)
    else:  # plain TRL + peft, configured by hand with the same arguments
        from datasets import Dataset
        from peft import LoraConfig
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import SFTConfig, SFTTrainer

        tok = AutoTokenizer.from_pretrained(model)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        # SmolLM2's template has no {% generation %} markers, so plain TRL cannot mask to the answers: it trains on
        # every token. The compute per token is the same; shipit masks by rendering the template itself.
        args = SFTConfig(**trl_kwargs(s, Path(work) / "ckpt"), max_length=s.max_length, packing=True,
                         assistant_only_loss=False)
        lora = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                          target_modules="all-linear", task_type="CAUSAL_LM") if peft else None
        trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model), args=args, processing_class=tok,
                             train_dataset=Dataset.from_list(rows), peft_config=lora)
    trainer.add_callback(clock)
    trainer.train()
    seen = {r["step"]: r["num_tokens"] for r in trainer.state.log_history if "num_tokens" in r}
    tokens = seen[warmup + steps] - seen[warmup]
    n_params = sum(p.numel() for n, p in trainer.model.named_parameters() if "lora_" not in n)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import torch

    gpu_mb = torch.cuda.max_memory_allocated() / 2 ** 20 if torch.cuda.is_available() else None
    print(json.dumps({"tokens_per_s": tokens / (clock.t1 - clock.t0), "tokens": tokens, "peak_rss_mb": rss_mb,
                      "peak_gpu_mb": gpu_mb,
                      "params": n_params, "mixed_precision": trainer.accelerator.mixed_precision}))


SHAPE = {"batch": 8, "length": 128}  # sequences a step x tokens a sequence (--batch, --length)


def measure(kind: str, mode: str, bf16: bool, model: Path, warmup: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as work:
        r = subprocess.run([sys.executable, __file__, "--child", kind, mode, str(int(bf16)), str(model), str(warmup),
                            str(steps), work, str(SHAPE["batch"]), str(SHAPE["length"])],
                       capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"{kind} {mode} bf16={bf16} failed:\n{r.stderr[-3000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["load"] = load()
    want = "bf16" if bf16 else "no"
    if out["mixed_precision"] != want:
        sys.exit(f"{kind} {mode}: trained with mixed precision {out['mixed_precision']!r}, asked for {want!r}")
    return out


def gpu_mb(r: dict) -> str:
    return f", peak GPU memory {r['peak_gpu_mb']:.0f} MB" if r.get("peak_gpu_mb") else ""


def part_speed(model: Path, warmup: int, steps: int) -> None:
    peak = {d: gemm_peak(d) for d in ("float32", "bfloat16")}
    print(f"GEMM peak (2048^3 on a CPU, 8192^3 on CUDA): float32 {peak['float32']:.0f} GFLOP/s, "
          f"bfloat16 {peak['bfloat16']:.0f} GFLOP/s "
          f"({peak['bfloat16'] / peak['float32']:.2f}x)  [{load()}]", flush=True)
    for mode, flops_per_token in (("lora", 4), ("full", 6)):
        res = {}
        for bf16 in (False, True):
            r = res[bf16] = measure("shipit", mode, bf16, model, warmup, steps)
            d = "bfloat16" if bf16 else "float32"
            mfu = flops_per_token * r["params"] * r["tokens_per_s"] / (peak[d] * 1e9)
            print(f"{mode:4s} SFT {d:8s}: {r['tokens_per_s']:7.1f} tokens/s ({r['tokens']} tokens in {steps} steps), "
                  f"MFU {100 * mfu:.1f}% of the {d} GEMM peak ({flops_per_token}*N, N={r['params'] / 1e6:.1f}M), "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB{gpu_mb(r)}  [{r['load']}]", flush=True)
        print(f"{mode:4s} SFT bf16 / float32 tokens/s: {res[True]['tokens_per_s'] / res[False]['tokens_per_s']:.2f}x "
              f"(target >= 1.8)", flush=True)


def part_trl(model: Path, warmup: int, steps: int, repeats: int) -> None:
    runs = {"shipit": [], "trl": []}
    for i in range(repeats):
        for kind in (("shipit", "trl") if i % 2 == 0 else ("trl", "shipit")):
            r = measure(kind, "lora", True, model, warmup, steps)
            runs[kind].append(r)
            print(f"  {kind:6s} LoRA bf16: {r['tokens_per_s']:7.1f} tokens/s, "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB{gpu_mb(r)}"
                  f"  [{r['load']}]", flush=True)
    on_gpu = all(r.get("peak_gpu_mb") for v in runs.values() for r in v)
    keys = ("tokens_per_s", "peak_rss_mb") + (("peak_gpu_mb",) if on_gpu else ())
    med = {k: {m: statistics.median(r[m] for r in v) for m in keys} for k, v in runs.items()}
    for k, v in med.items():
        print(f"median {k:6s}: {v['tokens_per_s']:7.1f} tokens/s, peak RSS {v['peak_rss_mb']:.0f} MB{gpu_mb(v)}")
    print(f"shipit/TRL tokens/s ratio: {med['shipit']['tokens_per_s'] / med['trl']['tokens_per_s']:.3f} (target >= 0.98)")
    print(f"shipit/TRL peak RSS ratio: {med['shipit']['peak_rss_mb'] / med['trl']['peak_rss_mb']:.3f} (target <= 1.05)")
    if on_gpu:  # on CUDA the memory that matters is the GPU's
        print(f"shipit/TRL peak GPU memory ratio: {med['shipit']['peak_gpu_mb'] / med['trl']['peak_gpu_mb']:.3f} "
              f"(target <= 1.05)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--part", choices=["speed", "trl", "all"], default="all")
    ap.add_argument("--warmup", type=int, default=2, help="steps before the timed window")
    ap.add_argument("--steps", type=int, default=8, help="timed steps (of --batch x --length tokens)")
    ap.add_argument("--batch", type=int, default=8, help="sequences a step")
    ap.add_argument("--length", type=int, default=128, help="tokens a packed sequence")
    ap.add_argument("--repeats", type=int, default=3, help="shipit/TRL pairs in part trl")
    ap.add_argument("--child", nargs=9)
    a = ap.parse_args()
    if a.child:
        kind, mode, bf16, model, warmup, steps, work, batch, length = a.child
        return child(kind, mode, bf16 == "1", model, int(warmup), int(steps), work, int(batch), int(length))
    import torch

    SHAPE.update(batch=a.batch, length=a.length)
    where = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"model {a.model}, torch {torch.__version__}, {where}, warm-up {a.warmup} steps, "
          f"{a.steps} timed steps of {a.batch} x {a.length} tokens", flush=True)
    if a.part in ("speed", "all"):
        part_speed(a.model, a.warmup, a.steps)
    if a.part in ("trl", "all"):
        part_trl(a.model, a.warmup, a.steps, a.repeats)


if __name__ == "__main__":
    main()
