"""Serving speed on a real checkpoint (default: SmolLM2-135M-Instruct from the shipit cache), all measured in this run:

(a) a vLLM CPU server (bfloat16, its CPU default) vs transformers `generate` on the same chat prompts (one left-padded
    batch; in bf16 when the CPU computes bf16 natively per `shipit.device`, and in float32): output tokens/s and the
    ratio to the faster of the two;
(b) bfloat16 vs float32 inside vLLM (`--dtype`);
(c) w8a8 and w4a16 (outputs of `shipit quantize`) vs bfloat16 on vLLM: output tokens/s and weight size on disk.

Every request asks for exactly --new tokens (min_tokens = max_tokens, ignore_eos), greedy, all --prompts at once; each
figure is the median of --repeats rounds after one warm-up round. One vLLM server at a time. The machine may be
shared: the 1-minute load average is printed beside each figure.

    SHIPIT_VLLM_PYTHON=$PWD/.venv-serve/bin/python PYTHONPATH=src .venv/bin/python benchmarks/bench_serving.py \\
        [--model DIR] [--w8a8 DIR] [--w4a16 DIR] [--methods w8a8,w4a16] [--prompts 16] [--new 64] [--repeats 3]

Without --w8a8/--w4a16 the quantized models are made here with `shipit quantize` (on SmolLM2, GPTQ takes 35-65 min
on 2 busy cores); an output given by path must be a `shipit quantize` output of --model (its manifest is checked).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LLM_COMPRESSOR_LOG_LEVEL", "ERROR")

DEFAULT_MODEL = Path.home() / ".cache/shipit/models/smollm2-135m-instruct"
TOPICS = ["the sea", "a farm", "trains", "bread", "the moon", "rain", "a library", "bees", "winter", "a river",
          "chess", "tea", "mountains", "a bicycle", "owls", "the desert"]


def load() -> float:
    return os.getloadavg()[0]


def prompts(n: int) -> list[str]:
    return [f"Write a short story about {TOPICS[i % len(TOPICS)]}." for i in range(n)]


def timed(fn, repeats: int) -> tuple[float, float, float]:
    """(median seconds, load before, load after) over `repeats` calls after one warm-up call."""
    fn()
    before, times = load(), []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), before, load()


def hf_tokens_per_s(model_dir: Path, ps: list[str], new: int, repeats: int, dtype) -> tuple[float, tuple]:
    """transformers `generate` in `dtype`, one left-padded batch, exactly `new` tokens per prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    if tok.pad_token is None:  # SmolLM2 has none; padding positions are masked out either way
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in ps]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)

    def run():
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        assert out.shape[1] - enc["input_ids"].shape[1] == new

    secs, l0, l1 = timed(run, repeats)
    return len(ps) * new / secs, (l0, l1)


def vllm_tokens_per_s(model_dir: Path, dtype: str, ps: list[str], new: int, repeats: int, log: Path):
    """One vLLM server on `model_dir` with `--dtype dtype`; all prompts at once, exactly `new` tokens each."""
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI

    from shipit.models.vllm_server import VLLMServer

    with VLLMServer(model_dir, name="bench", dtype=dtype, log_path=log) as server:
        client = OpenAI(base_url=server.base_url, api_key="unused", timeout=600)

        def ask(p):
            r = client.chat.completions.create(model="bench", messages=[{"role": "user", "content": p}],
                                               max_tokens=new, temperature=0,
                                               extra_body={"min_tokens": new, "ignore_eos": True})
            return r.usage.completion_tokens

        def run():
            with ThreadPoolExecutor(len(ps)) as pool:
                assert sum(pool.map(ask, ps)) == len(ps) * new

        secs, l0, l1 = timed(run, repeats)
        cmd = " ".join(shlex.quote(c) for c in server.command()[1:])
    return len(ps) * new / secs, (l0, l1), cmd


def quantized(method: str, given: Path | None, model: Path, work: Path) -> Path:
    """`given` after checking it is `shipit quantize METHOD` of `model`, else a fresh `shipit quantize` into `work`."""
    from shipit.quantize.run import run as quantize
    from shipit.registry import read_manifest

    if given is None:
        t0 = time.perf_counter()
        out = quantize(method, model, work / method, backend="vllm-cpu")
        print(f"   quantized {method} in {time.perf_counter() - t0:.0f} s", flush=True)
        return out
    m = read_manifest(given)
    src = Path(m["inputs"]["model"]["path"]).resolve()
    if m["config"]["method"] != method or src != model.resolve():
        sys.exit(f"{given}: a {m['config']['method']} of {src}, not a {method} of {model.resolve()}")
    return given


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--w8a8", type=Path, help="an existing `shipit quantize w8a8` output of --model")
    ap.add_argument("--w4a16", type=Path, help="an existing `shipit quantize w4a16` output of --model")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default="w8a8,w4a16", help="quantization methods for (c), comma-separated")
    ap.add_argument("--hf-dtypes", default="auto",
                    help="transformers dtypes for (a), comma-separated; auto: bfloat16 where native, and float32")
    ap.add_argument("--parts", default="abc", help="which of (a) (b) (c) to run; vLLM bfloat16 always runs (the baseline)")
    a = ap.parse_args()

    from shipit.models.load import dir_size_mb

    ps = prompts(a.prompts)
    print("command:", " ".join(shlex.quote(x) for x in sys.argv))
    print(f"model: {a.model}  ({a.prompts} chat prompts x {a.new} new tokens, greedy, all at once; "
          f"median of {a.repeats} after a warm-up; {os.cpu_count()} CPUs)", flush=True)
    rows = []

    def row(name, tps, loads, size=None, note=""):
        rows.append((name, tps, loads, size, note))
        size_s = f"{size:8.1f}" if size is not None else f"{'':8s}"
        print(f"   {name:34s} {tps:8.0f} tok/s {size_s} MB  load {loads[0]:.1f} -> {loads[1]:.1f}  {note}", flush=True)

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        print("\n(a) transformers generate vs vLLM server")
        if "a" in a.parts:
            import torch

            from shipit.device import cpu_bf16_native

            # bf16 where the CPU computes it natively (shipit.device), and float32 beside it: which is faster for a
            # decode loop of small steps is not settled by the matmul figures in shipit.device.
            hf = {}
            dtypes = ([torch.bfloat16] if cpu_bf16_native() else []) + [torch.float32] if a.hf_dtypes == "auto" \
                else [getattr(torch, x) for x in a.hf_dtypes.split(",")]
            for dtype in dtypes:
                name = str(dtype).replace("torch.", "")
                hf[name], loads = hf_tokens_per_s(a.model, ps, a.new, a.repeats, dtype)
                row(f"transformers generate ({name})", hf[name], loads, dir_size_mb(a.model))
            hf_tps = max(hf.values())
        bf16_tps, loads, cmd = vllm_tokens_per_s(a.model, "bfloat16", ps, a.new, a.repeats, d / "bf16.log")
        row("vLLM CPU (bfloat16)", bf16_tps, loads, dir_size_mb(a.model),
            f"{bf16_tps / hf_tps:.2f}x the faster transformers" if "a" in a.parts else "")
        print(f"   vLLM: {cmd}")
        if "b" in a.parts:
            print("\n(b) vLLM bfloat16 vs float32")
            f32_tps, loads, _ = vllm_tokens_per_s(a.model, "float32", ps, a.new, a.repeats, d / "f32.log")
            row("vLLM CPU (float32)", f32_tps, loads, dir_size_mb(a.model), f"bf16/fp32 {bf16_tps / f32_tps:.2f}x")
        print("\n(c) quantized on vLLM (bfloat16 activations) vs bfloat16")
        for method in a.methods.split(",") if "c" in a.parts else []:
            q = quantized(method, getattr(a, method), a.model, d)
            cfg = read_config(q)
            tps, loads, _ = vllm_tokens_per_s(q, "bfloat16", ps, a.new, a.repeats, d / f"{method}.log")
            row(f"vLLM CPU {method}{cfg}", tps, loads, dir_size_mb(q), f"{tps / bf16_tps:.2f}x bf16")
    print("\n| server | output tok/s | weights MB | 1-min load (before -> after) | note |\n|---|---|---|---|---|")
    for name, tps, loads, size, note in rows:
        print(f"| {name} | {tps:.0f} | {size:.1f} | {loads[0]:.1f} -> {loads[1]:.1f} | {note} |")


def read_config(q: Path) -> str:
    """' (group 64)' for a w4a16 output, else ''."""
    m = json.loads((q / "manifest.json").read_text())
    return f" (group {m['config']['group_size']})" if "group_size" in m["config"] else ""


if __name__ == "__main__":
    main()
