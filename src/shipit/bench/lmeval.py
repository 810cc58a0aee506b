"""`shipit bench --lm-eval TASKS`: lm-evaluation-harness on the candidates, with shipit's tasks over local JSON."""

from __future__ import annotations

import tempfile
from pathlib import Path

TASK_DIR = Path(__file__).parent / "lm_eval_tasks"


def shipped_tasks() -> list[str]:
    """Names of the lm-eval tasks shipit ships."""
    return sorted(p.stem for p in TASK_DIR.glob("*.yaml"))


def run_lm_eval(model: Path, tasks: list[str], data_dir: Path, limit: int | None = None,
                base_url: str | None = None, dtype: str = "auto") -> dict:
    """Run lm-eval on one model: the `hf` backend on its directory (in the inference dtype, `dtype` overriding: see
    `shipit.device.inference_dtype`), or `local-completions` against `base_url`."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from shipit.device import inference_dtype, torch_device

    with tempfile.TemporaryDirectory() as include:
        for p in TASK_DIR.glob("*.yaml"):
            (Path(include) / p.name).write_text(p.read_text().replace("__DATA_DIR__", str(Path(data_dir).resolve())))
        tm = TaskManager(include_path=include)
        if base_url:
            backend, args = "local-completions", (f"model={Path(model).name},base_url={base_url}/completions,"
                                                  f"tokenizer={Path(model).resolve()},tokenizer_backend=huggingface")
        else:
            name = str(inference_dtype(dtype)).removeprefix("torch.")
            backend, args = "hf", f"pretrained={Path(model).resolve()},dtype={name}"
        out = lm_eval.simple_evaluate(model=backend, model_args=args, tasks=tasks, task_manager=tm, limit=limit,
                                      device=torch_device(), batch_size=8, log_samples=False)
    return {task: {k.split(",")[0]: v for k, v in metrics.items() if isinstance(v, (int, float)) and "stderr" not in k}
            for task, metrics in out["results"].items()}
