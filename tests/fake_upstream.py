"""Small real HTTP servers for router tests: a fake OpenAI upstream whose behaviour a test switches, and a helper
that runs any ASGI app with uvicorn on a free port in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from shipit.models.vllm_server import free_port


@contextlib.contextmanager
def running(app, port: int = 0):
    """Serve `app` on 127.0.0.1 in a background thread; yields the base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="auto",
                                           timeout_graceful_shutdown=1))  # a hanging fake holds 1 s at most
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def wait_for(predicate, timeout: float = 5.0, what: str = "condition"):
    """Poll `predicate` every 20 ms until it returns something truthy (returned) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.02)


class FakeUpstream:
    """An OpenAI-shaped upstream. `mode`: ok | 500 | 400 | 401 | hang | die (mid-stream) | slow (stream) |
    merged (stream: three tokens per event, as vLLM sends when its reader falls behind, each event cut across two
    network writes) | down (health). A stream ends with vLLM's usage event when `stream_options.include_usage`."""

    def __init__(self, name: str, mode: str = "ok"):
        self.name, self.mode = name, mode
        self.calls: list[dict] = []
        self.cancelled = threading.Event()
        self.app = Starlette(routes=[Route("/health", self.health), Route("/v1/chat/completions", self.chat,
                                                                            methods=["POST"]),
                                     Route("/v1/completions", self.chat, methods=["POST"])])

    async def health(self, request: Request) -> Response:
        return Response(status_code=503 if self.mode == "down" else 200)

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.calls.append({"body": body, "headers": dict(request.headers)})
        mode = self.mode
        if mode == "500":
            return JSONResponse({"error": "boom"}, status_code=500)
        if mode == "400":
            return JSONResponse({"error": {"message": "bad", "type": "BadRequestError", "param": None, "code": 400}},
                                status_code=400)
        if mode == "401":
            return JSONResponse({"error": {"message": "invalid api key", "type": "AuthenticationError",
                                           "param": None, "code": 401}}, status_code=401)
        if mode == "hang":
            await asyncio.sleep(3600)
        if body.get("stream_options") and not body.get("stream"):  # as vLLM answers it
            return JSONResponse({"error": {"message": "Stream options can only be defined when `stream=True`.",
                                           "type": "BadRequestError", "param": None, "code": 400}}, status_code=400)
        if not body.get("stream"):
            return JSONResponse({"id": "x", "object": "chat.completion", "model": body["model"],
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": self.name},
                                              "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
        return StreamingResponse(self.events(body, mode), media_type="text/event-stream")

    async def events(self, body: dict, mode: str):
        per_event = 3 if mode == "merged" else 1
        try:
            for i in range(50 if mode == "slow" else 4):
                chunk = {"id": "x", "object": "chat.completion.chunk", "model": body["model"],
                         "choices": [{"index": 0, "delta": {"content": f"{self.name}{i} " * per_event},
                                      "finish_reason": None}]}
                event = f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"
                if mode == "merged":
                    yield event[:20]
                    await asyncio.sleep(0.01)
                    event = event[20:]
                yield event
                if mode == "die" and i == 1:
                    yield 'data: {"id":"x","choi'  # dies in the middle of an event
                    await asyncio.sleep(0.01)
                    raise RuntimeError("upstream died mid-stream")
                if mode == "slow":
                    await asyncio.sleep(0.1)
            if (body.get("stream_options") or {}).get("include_usage"):
                n = (i + 1) * per_event
                usage = {"id": "x", "object": "chat.completion.chunk", "model": body["model"], "choices": [],
                         "usage": {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": 3 + n}}
                yield f"data: {json.dumps(usage, separators=(',', ':'))}\n\n"
            yield "data: [DONE]\n\n"
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
