"""shipit merge vs the mergekit-yaml CLI on one config: wall time net of start-up, and peak RSS.

    python benchmarks/bench_merge.py [--hidden 384 --layers 6 --method ties --repeats 3 --threads 1]

Builds a base Llama (shipit.demo.base.build_model, untrained) and two perturbed copies, then runs each tool in its own
subprocess, alternating which goes first. Start-up is measured separately (`mergekit-yaml --help`; for shipit, the
imports `shipit merge` makes before it merges) and subtracted. Peak RSS is the child's ru_maxrss (RUSAGE_CHILDREN of a
fresh wrapper process per run). Prints medians and the ratio shipit/mergekit (target <= 1.05), for wall time and for
CPU time (user + sys), which a busy shared machine disturbs much less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
# Times one command in a fresh process, so RUSAGE_CHILDREN holds that command alone.
WRAPPER = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024}))
"""
SHIPIT_IMPORTS = "import shipit.cli, shipit.merge.run, shipit.merge.validate, shipit.registry, mergekit.merge, " \
                 "mergekit.config, mergekit.merge_methods.registry"


def build_models(root: Path, hidden: int, layers: int) -> dict[str, Path]:
    """A base model and two seeded perturbations of it (stand-ins for fine-tunes), with the shipit tokenizer."""
    import torch

    from shipit.demo.base import BaseConfig, _texts, build_model, build_tokenizer

    cfg = BaseConfig(hidden_size=hidden, intermediate_size=3 * hidden, num_layers=layers, num_heads=4)
    tokenizer = build_tokenizer(_texts(cfg.tokenizer_corpus), cfg.vocab_size)
    model = build_model(cfg, tokenizer)
    params = sum(p.numel() for p in model.parameters())
    paths = {}
    for i, name in enumerate(["base", "a", "b"]):
        if i:
            g = torch.Generator().manual_seed(i)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.01 * torch.randn(p.shape, generator=g))
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        paths[name] = root / name
    print(f"model: hidden {hidden}, {layers} layers, {params / 1e6:.1f}M parameters, "
          f"{sum(f.stat().st_size for f in (root / 'base').glob('*.safetensors')) / 1e6:.0f} MB per model")
    return paths


def write_config(root: Path, models: dict[str, Path], method: str) -> Path:
    import yaml

    specialists = [{"model": str(models[n]), "parameters": {"weight": 0.5, "density": 0.5}} for n in ("a", "b")]
    cfg = {"merge_method": method, "dtype": "float32", "base_model": str(models["base"]), "models": specialists}
    if method == "linear":
        cfg.pop("base_model")
        for m in specialists:
            m["parameters"].pop("density")
    path = root / "merge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def measure(cmd: list[str]) -> dict:
    """Wall time and peak RSS of `cmd`, run by a fresh wrapper process."""
    res = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, check=True)
    out = json.loads(res.stdout)
    if out["rc"]:
        raise SystemExit(f"failed ({out['rc']}): {' '.join(cmd)}")
    return out


def main() -> None:
    """Run both tools `repeats` times on one config and print the medians and the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--method", default="ties")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for both tools (1 keeps a shared machine's noise out of the ratio)")
    args = ap.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by both tools' subprocesses
    root = Path(tempfile.mkdtemp(prefix="bench-merge-"))
    try:
        config = write_config(root, build_models(root, args.hidden, args.layers), args.method)
        shipit_cmd = lambda out: [sys.executable, "-m", "shipit", "merge", str(config), "--out", str(out)]  # noqa: E731
        mergekit_cmd = lambda out: [str(BIN / "mergekit-yaml"), str(config), str(out), "--no-write-model-card",  # noqa: E731
                                    "--quiet", "--random-seed", "0"]
        startup = {"shipit": [sys.executable, "-c", SHIPIT_IMPORTS], "mergekit": [str(BIN / "mergekit-yaml"), "--help"]}
        runs: dict[str, list[dict]] = {"shipit": [], "mergekit": [], "shipit_startup": [], "mergekit_startup": []}
        for r in range(args.repeats):
            order = ["shipit", "mergekit"] if r % 2 == 0 else ["mergekit", "shipit"]
            for tool in order:
                out = root / f"out-{tool}-{r}"
                runs[tool].append(measure((shipit_cmd if tool == "shipit" else mergekit_cmd)(out)))
                runs[f"{tool}_startup"].append(measure(startup[tool]))
                shutil.rmtree(out)
        med = {k: statistics.median(x["wall_s"] for x in v) for k, v in runs.items()}
        rss = {k: max(x["peak_rss_mb"] for x in v) for k, v in runs.items() if not k.endswith("startup")}
        # Net time per round: the merge run less the start-up measured right after it, on the same machine state.
        # CPU time (user + sys) is printed beside wall time: on a shared machine it is far less disturbed by others.
        nets = {(t, kind): [a[kind] - b[kind] for a, b in zip(runs[t], runs[f"{t}_startup"])]
                for t in ("shipit", "mergekit") for kind in ("wall_s", "cpu_s")}
        net = {k: statistics.median(v) for k, v in nets.items()}
        for t in ("shipit", "mergekit"):
            print(f"{t:9} wall {med[t]:.2f}s  start-up {med[f'{t}_startup']:.2f}s  net {net[t, 'wall_s']:.2f}s "
                  f"(min {min(nets[t, 'wall_s']):.2f}s)  net CPU {net[t, 'cpu_s']:.2f}s  peak RSS {rss[t]:.1f} MB  "
                  f"(net wall per round: {', '.join(format(x, '.2f') for x in nets[t, 'wall_s'])})")
        ratio = {k: net["shipit", k] / net["mergekit", k] for k in ("wall_s", "cpu_s")}
        print(f"ratio shipit/mergekit, net of start-up, median of {args.repeats} rounds: wall {ratio['wall_s']:.3f} "
              f"(target <= 1.05), CPU {ratio['cpu_s']:.3f}; peak RSS {rss['shipit'] / rss['mergekit']:.3f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
