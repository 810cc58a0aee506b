"""shipit SFT vs plain TRL SFTTrainer on the same config, in one run; and packed vs padded SFT.

Each measurement runs in its own subprocess (clean peak RSS), alternating shipit and TRL so that machine noise hits
both alike; the median of the repeats is reported. Targets: tokens/s ratio >= 0.98, peak RSS ratio <= 1.05.

    .venv/bin/python benchmarks/bench_sft.py [--steps 30] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "src" / "shipit" / "demo" / "data"


def build_model(out: Path) -> None:
    """A ~4M-parameter Llama (the demo's shape), untrained: speed does not depend on the weights."""
    from shipit.demo.base import BaseConfig, _texts, build_model as make, build_tokenizer

    cfg = BaseConfig()
    tok = build_tokenizer(_texts(cfg.tokenizer_corpus), cfg.vocab_size)
    make(cfg, tok).save_pretrained(out)
    tok.save_pretrained(out)


def settings(steps: int) -> dict:
    return dict(learning_rate=5e-4, max_steps=steps, per_device_train_batch_size=16, max_length=128, warmup_steps=2,
                logging_steps=steps, save_steps=10_000, seed=0)


def child(kind: str, model: str, steps: int, packing: bool, work: str) -> None:
    """One measured training run; prints a JSON line with tokens/s and peak RSS."""
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    from shipit.formats.mix import DatasetSpec, load_mix
    from shipit.train.common import TrainerSettings, trl_kwargs

    s = TrainerSettings(**settings(steps))
    files = ["instructions.jsonl", "domain_qa_train.jsonl", "safety_sft.jsonl"]
    if kind == "shipit":
        from shipit.train import sft

        cfg = sft.Config(model=Path(model), output=Path(work) / "out", datasets=[DatasetSpec(path=DATA / f)
                         for f in files], eval_fraction=0, packing=packing, trainer=s)
        out = sft.run(cfg)
        m = json.loads((out / "manifest.json").read_text())["metrics"]
        runtime = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]["train_runtime"]
        tokens = m["train_tokens"]
    else:  # plain TRL, configured by hand with the same arguments
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import SFTConfig, SFTTrainer

        rows = load_mix([DatasetSpec(path=DATA / f) for f in files], seed=0)
        tok = AutoTokenizer.from_pretrained(model)
        args = SFTConfig(**trl_kwargs(s, Path(work) / "ckpt"), max_length=s.max_length, packing=packing,
                         assistant_only_loss=True)
        trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model), args=args,
                             train_dataset=Dataset.from_list(rows), processing_class=tok)
        result = trainer.train()
        runtime = result.metrics["train_runtime"]
        tokens = [r["num_tokens"] for r in trainer.state.log_history if "num_tokens" in r][-1]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"tokens_per_s": tokens / runtime, "peak_rss_mb": rss_mb, "tokens": tokens}))


def measure(kind: str, model: Path, steps: int, packing: bool) -> dict:
    with tempfile.TemporaryDirectory() as work:
        r = subprocess.run([sys.executable, __file__, "--child", kind, str(model), str(steps), str(packing), work],
                           capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"{kind} run failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", nargs=5)
    a = ap.parse_args()
    if a.child:
        kind, model, steps, packing, work = a.child
        return child(kind, model, int(steps), packing == "True", work)
    with tempfile.TemporaryDirectory() as d:
        model = Path(d) / "model"
        build_model(model)
        runs = {"shipit": [], "trl": [], "padded": []}
        for _ in range(a.repeats):
            runs["shipit"].append(measure("shipit", model, a.steps, True))
            runs["trl"].append(measure("trl", model, a.steps, True))
            runs["padded"].append(measure("shipit", model, a.steps, False))
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("tokens_per_s", "peak_rss_mb")} for k, v in runs.items()}
    print(f"steps={a.steps} repeats={a.repeats} (batch 16 x 128 tokens, ~4M-parameter Llama, CPU)")
    for k, v in med.items():
        print(f"  {k:7s} tokens/s {v['tokens_per_s']:8.0f}   peak RSS {v['peak_rss_mb']:7.0f} MB")
    print(f"shipit/TRL tokens/s ratio: {med['shipit']['tokens_per_s'] / med['trl']['tokens_per_s']:.3f} (target >= 0.98)")
    print(f"shipit/TRL peak RSS ratio: {med['shipit']['peak_rss_mb'] / med['trl']['peak_rss_mb']:.3f} (target <= 1.05)")
    print(f"packed/padded tokens/s ratio: {med['shipit']['tokens_per_s'] / med['padded']['tokens_per_s']:.2f}")


if __name__ == "__main__":
    main()
