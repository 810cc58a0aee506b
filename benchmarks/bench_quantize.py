"""Quantization and serving speed on a ~15M-parameter Llama, all measured in this run:

1. size ratio and held-out perplexity change per quantization method;
2. ONNX Runtime int8 vs torch fp32 per-token latency (both cache-free full forwards, the ONNX graph's algorithm;
   torch with its KV cache is printed beside them for reference);
3. vLLM server vs transformers generate: output tokens/s on the same prompts.

    .venv/bin/python benchmarks/bench_quantize.py [--pretrain-steps 40] [--no-vllm]

With --model DIR (a real checkpoint, e.g. ~/.cache/shipit/models/smollm2-135m-instruct) only part 1 runs, on that
model, with `shipit quantize`'s defaults (64 calibration texts, 64 held-out texts, the 5% perplexity bound):

    .venv/bin/python benchmarks/bench_quantize.py --model DIR [--methods w8a8,w4a16,onnx-int8,fp8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LLM_COMPRESSOR_LOG_LEVEL", "ERROR")


def per_token_ms(step, ids, n: int) -> float:
    """Median ms per generated token of greedy cache-free decoding: one full forward per new token."""
    import torch

    times = []
    for _ in range(3):
        seq = ids.clone()
        t0 = time.perf_counter()
        for _ in range(n):
            nxt = step(seq).argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], 1)
        times.append((time.perf_counter() - t0) * 1000 / n)
    return statistics.median(times)


def quantize_table(model: Path, names: list[str] | None, out_root: Path | None = None) -> None:
    """Part 1 on an existing model: one `shipit quantize` per method; a method that fails its bound prints why."""
    from shipit.errors import UserError
    from shipit.quantize import methods
    from shipit.quantize.run import run as quantize

    with tempfile.TemporaryDirectory() as d:
        print(f"model: {model}")
        print(f"   {'method':10s} {'size MB':>8s} {'size ratio':>10s} {'ppl source':>11s} {'ppl quant':>10s} "
              f"{'ppl change':>11s} {'max logit diff':>14s} {'time':>6s}", flush=True)
        for method in names or list(methods()):
            t0 = time.perf_counter()
            try:
                out = quantize(method, model, (out_root or Path(d)) / method, backend="vllm-cpu")
            except UserError as exc:
                print(f"   {method:10s} FAILED: {exc}  ({time.perf_counter() - t0:.0f}s)", flush=True)
                continue
            m = json.loads((out / "manifest.json").read_text())
            r, extra = m["metrics"], f" group {m['config']['group_size']}" if "group_size" in m["config"] else ""
            print(f"   {method:10s} {r['size_mb']:8.1f} {r['size_ratio']:10.3f} {r['ppl_source']:11.3f} "
                  f"{r['ppl_quantized']:10.3f} {r['ppl_delta_pct']:+10.2f}% {r['max_logit_diff']:14.3f} "
                  f"{time.perf_counter() - t0:5.0f}s{extra}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pretrain-steps", type=int, default=40)
    ap.add_argument("--no-vllm", action="store_true")
    ap.add_argument("--model", type=Path, help="Quantize this model directory instead (part 1 only).")
    ap.add_argument("--methods", help="Comma-separated methods (default: all registered).")
    a = ap.parse_args()
    if a.model:
        quantize_table(a.model, a.methods.split(",") if a.methods else None)
        return

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shipit.demo.base import BaseConfig, build_base
    from shipit.quantize import methods
    from shipit.models.ort_model import OrtCausalLM
    from shipit.quantize.run import run as quantize

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        cfg = BaseConfig(hidden_size=512, intermediate_size=1536, num_layers=4, num_heads=8,
                         pretrain={"learning_rate": 1.5e-3, "max_steps": a.pretrain_steps, "save_steps": 10_000})
        base = build_base(cfg, d / "base")
        params = json.loads((base / "manifest.json").read_text())["metrics"]["params"]
        print(f"model: {params / 1e6:.1f}M parameters (hidden 512, 4 layers), pretrained {a.pretrain_steps} steps")
        print("\n1. quantization: size and perplexity (held-out general text)")
        print(f"   {'method':10s} {'size ratio':>10s} {'ppl source':>11s} {'ppl quant':>10s} {'ppl change':>11s}")
        for method in methods():
            t0 = time.perf_counter()
            m = json.loads((quantize(method, base, d / method, backend="vllm-cpu") / "manifest.json").read_text())
            r = m["metrics"]
            print(f"   {method:10s} {r['size_ratio']:10.3f} {r['ppl_source']:11.3f} {r['ppl_quantized']:10.3f} "
                  f"{r['ppl_delta_pct']:+10.2f}%  ({time.perf_counter() - t0:.0f}s)")

        tok = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base).eval()
        ids = tok("Anna went to the park with Ben and they saw", return_tensors="pt")["input_ids"]
        ort = OrtCausalLM(d / "onnx-int8")
        n = 32
        with torch.no_grad():
            torch_ms = per_token_ms(lambda s: model(input_ids=s, use_cache=False).logits[:, -1], ids, n)
            ort_ms = per_token_ms(lambda s: ort(s).logits[:, -1], ids, n)
            t0 = time.perf_counter()
            model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
            cached_ms = (time.perf_counter() - t0) * 1000 / n
        print(f"\n2. per-token latency, {n} new tokens, batch 1, cache-free forwards")
        print(f"   torch fp32 {torch_ms:.2f} ms   onnxruntime int8 {ort_ms:.2f} ms   ratio onnx/torch {ort_ms / torch_ms:.3f}")
        print(f"   (torch fp32 with KV cache, for reference: {cached_ms:.2f} ms)")

        if a.no_vllm:
            return
        from concurrent.futures import ThreadPoolExecutor

        from openai import OpenAI

        from shipit.models.generate import chat_generate
        from shipit.models.vllm_server import VLLMServer

        prompts = [f"Tell me about day {i} at the farm." for i in range(16)]
        new = 64
        t0 = time.perf_counter()
        chat_generate(model, tok, prompts, max_new_tokens=new, min_new_tokens=new)
        hf_tps = len(prompts) * new / (time.perf_counter() - t0)
        with VLLMServer(base, name="bench", log_path=d / "vllm.log") as server:
            client = OpenAI(base_url=server.base_url, api_key="unused")

            def ask(p):
                r = client.chat.completions.create(model="bench", messages=[{"role": "user", "content": p}],
                                                   max_tokens=new, temperature=0,
                                                   extra_body={"min_tokens": new, "ignore_eos": True})
                return r.usage.completion_tokens

            ask(prompts[0])  # warm-up
            t0 = time.perf_counter()
            with ThreadPoolExecutor(len(prompts)) as pool:
                tokens = sum(pool.map(ask, prompts))
            vllm_tps = tokens / (time.perf_counter() - t0)
        print(f"\n3. output tokens/s, {len(prompts)} prompts x {new} tokens, all at once")
        print(f"   transformers generate (batched) {hf_tps:.0f}   vLLM server {vllm_tps:.0f}   "
              f"ratio vLLM/HF {vllm_tps / hf_tps:.2f}")


if __name__ == "__main__":
    main()
