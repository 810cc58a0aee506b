"""The router's added latency with its events in PostgreSQL beside SQLite: same stub, same run, interleaved.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_events.py --n 3000

Three paths against one stub upstream (bench_router.py's): direct, a router on SQLite, a router on PostgreSQL (a
local server from the `pgserver` wheel, fsync on, as tests/pg_server.py starts it). Sequential requests in blocks of
100, the order of the paths rotated each block to cancel drift; then `--concurrency` clients at once per router
(throughput, and the group commit's effect on p50 under load).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/pg_server.py
from bench_router import KEY, STUB, router  # noqa: E402

from shipit.models.vllm_server import free_port  # noqa: E402
from tests.pg_server import LocalPostgres  # noqa: E402

BODY = {"model": "bench", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 1}


def sequential(urls: dict[str, str], n: int) -> dict[str, list[float]]:
    lat = {k: [] for k in urls}
    names = list(urls)
    with httpx.Client(headers={"authorization": f"Bearer {KEY}"}) as c:
        for name in names:  # warm every path
            for _ in range(200):
                c.post(f"{urls[name]}/v1/chat/completions", json=BODY)
        for block in range(n // 100):
            for name in names[block % 3:] + names[: block % 3]:
                for _ in range(100):
                    t0 = time.perf_counter()
                    r = c.post(f"{urls[name]}/v1/chat/completions", json=BODY)
                    lat[name].append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200, r.text
    return lat


def concurrent(url: str, n: int, clients: int) -> dict:
    def worker(k: int) -> list[float]:
        out = []
        with httpx.Client(headers={"authorization": f"Bearer {KEY}"}) as c:
            for _ in range(k):
                t0 = time.perf_counter()
                assert c.post(f"{url}/v1/chat/completions", json=BODY).status_code == 200
                out.append((time.perf_counter() - t0) * 1000)
        return out

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as ex:
        lat = [x for part in ex.map(worker, [n // clients] * clients) for x in part]
    return {"req_s": len(lat) / (time.perf_counter() - t0), "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="Sequential requests per path.")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--n-concurrent", type=int, default=3200, help="Requests per router in the concurrent phase.")
    args = ap.parse_args()
    port = free_port()
    stub = subprocess.Popen([sys.executable, "-c", STUB, str(port)])
    pg = LocalPostgres(fsync=True).start()
    try:
        dsn = pg.create_db("bench")
        with tempfile.TemporaryDirectory() as d:
            time.sleep(0.5)
            stub_url = f"http://127.0.0.1:{port}"
            with router(stub_url, Path(d)) as (sq, _), router(stub_url, Path(d), events=dsn) as (pq, _):
                lat = sequential({"direct": stub_url, "sqlite": sq, "postgresql": pq}, args.n)
                conc = {name: concurrent(url, args.n_concurrent, args.concurrency)
                        for name, url in (("sqlite", sq), ("postgresql", pq))}
    finally:
        stub.terminate()
        pg.destroy()
    q = {k: {p: float(np.percentile(v, p)) for p in (50, 99)} for k, v in lat.items()}
    added = {k: {p: q[k][p] - q["direct"][p] for p in (50, 99)} for k in ("sqlite", "postgresql")}
    for k in ("direct", "sqlite", "postgresql"):
        print(f"{k:10} p50 {q[k][50]:.3f} ms p99 {q[k][99]:.3f} ms"
              + (f" | added p50 {added[k][50]:.3f} ms p99 {added[k][99]:.3f} ms" if k in added else ""))
    print(f"postgresql - sqlite: p50 {added['postgresql'][50] - added['sqlite'][50]:+.3f} ms, "
          f"p99 {added['postgresql'][99] - added['sqlite'][99]:+.3f} ms")
    for k, c in conc.items():
        print(f"{k:10} {args.concurrency} clients: {c['req_s']:.0f} req/s, p50 {c['p50_ms']:.2f} ms, "
              f"p99 {c['p99_ms']:.2f} ms")
    print(json.dumps({"n": args.n, "ms": q, "added_ms": added, "concurrent": conc}, default=float))


if __name__ == "__main__":
    main()
