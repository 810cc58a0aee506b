"""The bench's generation (`chat_generate`, greedy) at several batch sizes, on held-out harmful prompts (or the
demo's replay requests, which the data engine's hf generator answers the same way), with the
chat template's shared start run once a batch (`--prefix on`, the default), padded with every row (`off`), or each
size both ways (`both`): seconds, output tokens/s and whether the answers equal the first run's, all in this run.

    .venv/bin/python benchmarks/bench_generate_batch.py [--model DIR] [--prompts 64] [--sizes 16,32,64]
        [--prefix on|off|both] [--dtype float32|bfloat16] [--requests harmful|replay] [--new-tokens 32]

DIR defaults to the imported SmolLM2-135M-Instruct (~/.cache/shipit/models/smollm2-135m-instruct).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shipit.demo.run import RECIPE
    from shipit.models.generate import chat_generate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=Path.home() / ".cache/shipit/models/smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--sizes", default="16,32,64")
    ap.add_argument("--prefix", choices=["on", "off", "both"], default="on")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--requests", choices=["harmful", "replay"], default="harmful")
    args = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype))
    name = {"harmful": "harmful_prompts.jsonl", "replay": "replay_prompts.jsonl"}[args.requests]
    rows = [json.loads(x) for x in (RECIPE.parent / "data-real" / name).read_text().splitlines()]
    prompts = [r["prompt"] for r in rows if r.get("split", "heldout") == "heldout"][:args.prompts]
    chat_generate(model, tok, prompts[:4], max_new_tokens=4)  # warm-up
    first = None
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.prefix]
    for size in (int(s) for s in args.sizes.split(",")):
        took = {}
        for share in modes:
            t0 = time.perf_counter()
            answers = chat_generate(model, tok, prompts, max_new_tokens=args.new_tokens, batch_size=size,
                                    share_prefix=share)
            took[share] = dt = time.perf_counter() - t0
            first = first or answers
            same = sum(a == b for a, b in zip(answers, first))
            print(f"batch {size:3d}, shared start {'on ' if share else 'off'}: {dt:6.1f} s, "
                  f"{len(prompts) * args.new_tokens / dt:6.1f} tokens/s (at most {args.new_tokens} a prompt), "
                  f"answers equal to the first run's: {same}/{len(prompts)}", flush=True)
        if len(took) == 2:
            print(f"batch {size:3d}: the shared start run once is {took[False] / took[True]:.2f}x faster", flush=True)


if __name__ == "__main__":
    main()
