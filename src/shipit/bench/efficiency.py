"""Efficiency: size, load time, per-token latency, throughput and peak memory, in process and under vLLM."""

from __future__ import annotations

import statistics
import threading
import time
from contextlib import contextmanager
from pathlib import Path


def percentile(xs: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    xs = sorted(xs)
    k = (len(xs) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


@contextmanager
def peak_rss_growth():
    """Yields a dict whose `mb` is the peak RSS growth (MB) of this process during the block, sampled every 5 ms."""
    import psutil

    proc = psutil.Process()
    start = proc.memory_info().rss
    out = {"mb": 0.0}
    stop = threading.Event()

    def sample():
        peak = start
        while not stop.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.005)
        out["mb"] = (max(peak, proc.memory_info().rss) - start) / 1e6

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield out
    finally:
        stop.set()
        t.join()


def in_process(model, tokenizer, prompts: list[str], max_new_tokens: int) -> dict:
    """Per-token latency (one prompt at a time, p50/p95) and batched throughput with greedy decoding."""
    from shipit.models.generate import chat_generate

    per_token = []
    for p in prompts:
        t0 = time.perf_counter()
        chat_generate(model, tokenizer, [p], max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens)
        per_token.append((time.perf_counter() - t0) * 1000 / max_new_tokens)
    t0 = time.perf_counter()
    chat_generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens)
    elapsed = time.perf_counter() - t0
    return {"latency_p50_ms": round(statistics.median(per_token), 3),
            "latency_p95_ms": round(percentile(per_token, 95), 3),
            "throughput_tok_s": round(len(prompts) * max_new_tokens / elapsed, 1)}


def under_vllm(path: Path, prompts: list[str], max_new_tokens: int, log_dir: Path) -> dict:
    """Start vLLM on `path`, stream one request per prompt (inter-token latency, TTFT), then all at once (throughput)."""
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI

    from shipit.models.vllm_server import VLLMServer

    with VLLMServer(path, name="bench", log_path=log_dir / f"vllm-{Path(path).name}.log") as server:
        client = OpenAI(base_url=server.base_url, api_key="unused")

        def one(prompt, stream=True):
            t0 = time.perf_counter()
            times = []
            chunks = client.chat.completions.create(
                model=server.served_name, messages=[{"role": "user", "content": prompt}], temperature=0,
                max_tokens=max_new_tokens, stream=True, extra_body={"min_tokens": max_new_tokens, "ignore_eos": True})
            for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    times.append(time.perf_counter())
            return t0, times

        ttft, itl = [], []
        for p in prompts:
            t0, times = one(p)
            if times:
                ttft.append((times[0] - t0) * 1000)
                itl += [(b - a) * 1000 for a, b in zip(times, times[1:])]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(len(prompts)) as pool:
            list(pool.map(one, prompts))
        elapsed = time.perf_counter() - t0
    return {"vllm_ttft_p50_ms": round(statistics.median(ttft), 3),
            "vllm_latency_p50_ms": round(statistics.median(itl), 3) if itl else None,
            "vllm_latency_p95_ms": round(percentile(itl, 95), 3) if itl else None,
            "vllm_throughput_tok_s": round(len(prompts) * max_new_tokens / elapsed, 1)}
