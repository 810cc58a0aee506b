"""`shipit bench CONFIG`: every candidate through every task and efficiency measure; gates, then the winner."""

from __future__ import annotations

import json
import time
from pathlib import Path

from shipit.bench.config import BenchConfig, gate_failures, rank
from shipit.models.check import require_model


def bench_model(path: Path, cfg: BenchConfig, ctx) -> dict:
    """Load one candidate, run every task and the efficiency measures; returns {task: metrics, 'efficiency': ...}."""
    from shipit.bench.efficiency import in_process, peak_rss_growth, under_vllm
    from shipit.bench.lmeval import run_lm_eval
    from shipit.bench.tasks import get_task
    from shipit.bench.tasks.alignment import eval_prompts
    from shipit.models.load import dir_size_mb, is_onnx_dir, load_for_eval
    from shipit.models.serving import serve_problem

    t0 = time.perf_counter()
    model, tokenizer, backend = load_for_eval(path, cfg.dtype)
    load_s = time.perf_counter() - t0
    result, task_s = {}, {}
    for task in cfg.tasks:
        t = time.perf_counter()
        result[task] = get_task(task)(model, tokenizer, ctx)
        task_s[task] = round(time.perf_counter() - t, 2)
    prompts = eval_prompts(ctx, cfg.efficiency.prompts)
    with peak_rss_growth() as mem:  # tasks ran first, so lazy imports and caches are warm
        eff = in_process(model, tokenizer, prompts, cfg.efficiency.max_new_tokens)
    size_mb = dir_size_mb(path)
    # Peak memory = weights held + the peak growth while generating (activations, KV cache, buffers).
    weights_mb = size_mb if backend == "onnxruntime" else sum(
        t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()]) / 1e6
    eff.update({"backend": backend, "dtype": str(model.dtype).removeprefix("torch.") if backend == "hf" else None,
                "size_mb": round(size_mb, 3), "load_s": round(load_s, 3),
                "peak_mem_mb": round(weights_mb + mem["mb"], 1), "task_s": task_s})
    if cfg.efficiency.vllm and not is_onnx_dir(path):
        problem = serve_problem(path)  # such a candidate cannot win either (see `decide`)
        eff.update({"vllm_skipped": problem} if problem else
                   under_vllm(path, prompts, cfg.efficiency.max_new_tokens, cfg.output.parent))
    result["efficiency"] = eff
    if cfg.lm_eval and not is_onnx_dir(path):
        result["lm_eval"] = run_lm_eval(path, cfg.lm_eval, cfg.data_dir, limit=cfg.lm_eval_limit, dtype=cfg.dtype)
    return result


def candidate_keys(cfg: BenchConfig) -> dict[str, str]:
    """Per candidate, what its numbers depend on: its weights, plus what all candidates share (the bench data, the
    dtype they run in and every setting that changes a task's or an efficiency measure's result; not weights or
    gates, which only read the numbers)."""
    import hashlib

    import shipit
    from shipit.device import inference_dtype
    from shipit.registry import hash_path

    settings = cfg.model_dump(mode="json", include={"tasks", "efficiency", "lm_eval", "lm_eval_limit", "conventions",
                                                    "judge"})
    if cfg.safety_sampled:  # only when set, so the keys of benches written before it existed still match
        settings["safety_sampled"] = cfg.safety_sampled.model_dump(mode="json")
    if cfg.eval_limit:  # likewise
        settings["eval_limit"] = cfg.eval_limit
    if cfg.eval_part:  # likewise
        settings["eval_part"] = cfg.eval_part
    shared = {**settings, "data": hash_path(cfg.data_dir), "dtype": str(inference_dtype(cfg.dtype)),
              "reward_model": hash_path(cfg.reward_model) if cfg.reward_model else None,
              "baseline": hash_path(cfg.models[cfg.judge.baseline]) if cfg.judge else None,
              "shipit": shipit.__version__}
    return {name: hashlib.sha256(json.dumps({**shared, "model": hash_path(path)}, sort_keys=True).encode())
            .hexdigest()[:16] for name, path in cfg.models.items()}


def previous_results(out: Path) -> dict[str, dict]:
    """The results of the bench last written to `out` (a finished shipit output), by candidate key."""
    from shipit.registry import MANIFEST

    try:
        if not (out / MANIFEST).is_file():
            return {}
        summary = json.loads((out / "results.json").read_text())
        created = json.loads((out / MANIFEST).read_text()).get("created")
        return {r["key"]: {**r, "reused": r.get("reused") or created} for r in summary["results"].values()
                if isinstance(r, dict) and r.get("key")}
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # an unreadable earlier output is benched again, not trusted


def weighted_score(result: dict, weights: dict[str, float], tasks: list[str]) -> float | None:
    """Mean of task scores weighted by `weights` (default 1 each); a task with score None (the judge's reference,
    the baseline) is left out. None when no task has a score."""
    w = {t: weights.get(t, 1.0) for t in tasks if result[t]["score"] is not None}
    if not w or sum(w.values()) == 0:
        return None
    return round(sum(result[t]["score"] * w[t] for t in w) / sum(w.values()), 4)


def decide(results: dict, cfg: BenchConfig) -> dict:
    """Gates first, then the best weighted score among the candidates that pass; every reason is kept. A candidate
    the serving backend cannot serve on this machine (`serve_problem`) cannot win: the winner is what gets served."""
    from shipit.models.serving import serve_problem

    failures = {name: gate_failures(r, cfg.gates) for name, r in results.items()}
    for name in results:
        if problem := serve_problem(cfg.models[name]):
            failures[name].append(f"cannot be served on this machine: {problem}")
    passed = [n for n in results if not failures[n]]
    if not passed:
        return {"winner": None, "passed": [], "failed": failures,
                "reason": f"no candidate passed the gates ({len(results)} tried)"}
    winner = max(passed, key=lambda n: rank(results[n]["score"]))
    runner_up = sorted(passed, key=lambda n: -rank(results[n]["score"]))[1:2]
    fmt = lambda x: "n/a" if x is None else f"{x:.4f}"  # noqa: E731
    reason = f"passed every gate and has the highest weighted score {fmt(results[winner]['score'])}"
    if runner_up:
        reason += f" (next: {runner_up[0]} {fmt(results[runner_up[0]]['score'])})"
    return {"winner": winner, "passed": passed, "failed": {n: f for n, f in failures.items() if f}, "reason": reason}


def run(cfg: BenchConfig) -> dict:
    """Bench every candidate; write results.json, report.md, report.html and plots to cfg.output."""
    from shipit.bench.report import write_reports
    from shipit.bench.tasks import TaskContext, parse_part
    from shipit.errors import GateFailure
    from shipit.registry import read_manifest, stage_output

    for name, path in cfg.models.items():
        require_model(path, f"bench: model '{name}'",
                     hint="expected a Hugging Face model directory")
    ctx = TaskContext(cfg.data_dir, cfg.reward_model, cfg.judge, cfg.conventions, limit=cfg.eval_limit,
                      sampled=cfg.safety_sampled, part=parse_part(cfg.eval_part))
    order = sorted(cfg.models, key=lambda n: n != (cfg.judge.baseline if cfg.judge else None))  # baseline first
    inputs = dict(cfg.models) | ({"reward_model": cfg.reward_model} if cfg.reward_model else {})
    earlier = previous_results(cfg.output) if cfg.reuse else {}
    keys = candidate_keys(cfg)
    with stage_output(cfg.output, "bench", cfg, inputs) as out:
        results = {}
        for i, name in enumerate(order, 1):
            key = keys[name]
            if key in earlier:
                print(f"  bench {i}/{len(order)}: {name}: unchanged (model, data and settings), results of "
                      f"{earlier[key]['reused']} reused", flush=True)
                results[name] = {k: v for k, v in earlier[key].items() if k != "score"}
            else:
                print(f"  bench {i}/{len(order)}: {name}", flush=True)
                t = time.perf_counter()
                results[name] = {**bench_model(cfg.models[name], cfg, ctx), "key": key}
                took = ", ".join(f"{k} {v:.0f} s" for k, v in results[name]["efficiency"]["task_s"].items())
                print(f"  bench {i}/{len(order)}: {name} done in {time.perf_counter() - t:.0f} s ({took})", flush=True)
            results[name]["score"] = weighted_score(results[name], cfg.weights, cfg.tasks)
        results = {n: results[n] for n in cfg.models}
        decision = decide(results, cfg)
        stages = {n: {"stage": (read_manifest(p) or {}).get("stage", "external"),
                      "metrics": (read_manifest(p) or {}).get("metrics", {})} for n, p in cfg.models.items()}
        summary = {"tasks": cfg.tasks, "weights": cfg.weights, "gates": cfg.gates, "eval_limit": cfg.eval_limit,
                   "eval_part": cfg.eval_part, "results": results,
                   **decision, "winner_path": str(cfg.models[decision["winner"]].resolve()) if decision["winner"]
                   else None, "stages": stages, "report": str(cfg.output.resolve() / "report.html")}
        (out.dir / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
        write_reports(summary, out.dir)
        out.metrics.update({"candidates": len(results), "passed": len(decision["passed"]),
                            "reused": sum(bool(r.get("reused")) for r in results.values()),
                            "winner_score": results[decision["winner"]]["score"] if decision["winner"] else None})
        out.extra["decision"] = decision
    if decision["winner"] is None and cfg.on_no_winner == "fail":
        raise GateFailure(f"bench: {decision['reason']}; see {cfg.output / 'report.md'}")
    return summary
