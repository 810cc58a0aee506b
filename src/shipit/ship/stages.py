"""Small stage configs that exist only for recipes: quantize by name, and a served-answer check."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import Field

from shipit.config import StrictModel


class QuantizeStage(StrictModel):
    """Quantize `model` with `method` (w4a16, w8a8, fp8, onnx-int8) for `backend`."""

    method: str
    model: Path
    backend: str | None = None


class ServeCheck(StrictModel):
    """Serve `model` with vLLM on loopback, ask `prompts` through the OpenAI client, record the answers."""

    model: Path
    prompts: list[str] = Field(min_length=1)
    max_tokens: int = 32
    output: Path


def serve_check(cfg: ServeCheck) -> Path:
    """Start vLLM on the model, ask each prompt at temperature 0, stop it; answers go to transcript.jsonl."""
    from openai import OpenAI

    from shipit.registry import stage_output
    from shipit.serve.vllm import VLLMServer

    with stage_output(cfg.output, "serve/check", cfg, {"model": cfg.model}) as out:
        transcript = []
        with VLLMServer(cfg.model, name="winner", log_path=out.dir / "vllm.log") as server:
            client = OpenAI(base_url=server.base_url, api_key="unused")
            for prompt in cfg.prompts:
                t0 = time.perf_counter()
                r = client.chat.completions.create(model=server.served_name, temperature=0, max_tokens=cfg.max_tokens,
                                                   messages=[{"role": "user", "content": prompt}])
                transcript.append({"prompt": prompt, "answer": r.choices[0].message.content,
                                   "completion_tokens": r.usage.completion_tokens,
                                   "latency_s": round(time.perf_counter() - t0, 3)})
        (out.dir / "transcript.jsonl").write_text("".join(json.dumps(t) + "\n" for t in transcript))
        out.metrics.update({"requests": len(transcript),
                            "completion_tokens": sum(t["completion_tokens"] for t in transcript)})
    return cfg.output
