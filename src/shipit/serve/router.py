"""The A/B router: an OpenAI-compatible front that assigns each user to an arm and proxies to its replicas."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from pathlib import Path

import aiohttp
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from shipit.serve import assign
from shipit.serve.answers import StreamTally, answer_text, prompt_of, stream_text, usage_of
from shipit.serve.auth import load_hashes
from shipit.serve.config import ABConfig
from shipit.serve.events import StoreUnavailable, latest_weights, open_store
from shipit.serve.metrics import Metrics
from shipit.serve.upstream import Pool, make_pools



class ClientGone(Exception):
    """The client disconnected before the answer started."""


class Upstream5xx(Exception):
    """Every attempt failed; carries the status and message for the client."""

    def __init__(self, status: int, message: str, code: str):
        super().__init__(message)
        self.status, self.code = status, code


def error(status: int, message: str, type_: str, code: str | None = None, param: str | None = None,
          headers: dict | None = None) -> JSONResponse:
    """An error in the OpenAI shape."""
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": code}},
                        status_code=status, headers=headers)


def sse_error(message: str) -> bytes:
    """An error event for a stream that already started (its status line is already sent)."""
    body = {"error": {"message": message, "type": "upstream_error", "param": None, "code": "upstream_died"}}
    return f"data: {json.dumps(body)}\n\n".encode()


class Router:
    """State of one router app: config, weights, replica pools, limits, event store and metrics."""

    def __init__(self, cfg: ABConfig, config_path: Path | None = None):
        self.cfg, self.config_path = cfg, config_path
        self.mtime = config_path.stat().st_mtime if config_path else None
        self.digests = load_hashes(cfg.auth, str(config_path or "config"))
        keys = {a.name: os.environ.get(a.upstream_api_key_env) if a.upstream_api_key_env else None for a in cfg.arms}
        self.pools: dict[str, Pool] = make_pools(cfg.arms, cfg.health, keys)
        self.upstream_model = {a.name: a.upstream_model for a in cfg.arms}
        self.store = open_store(cfg.events, checkpoint_s=2.0)
        latest = latest_weights(self.store.conn, cfg.experiment)
        self.set_weights(*(latest or (0, cfg.weights())))
        self.metrics = Metrics(cfg.experiment)
        self.slots = asyncio.Semaphore(cfg.limits.max_concurrency)
        self.waiting = 0  # requests queued for a slot (gauge shipit_queued)
        self.active = 0  # requests holding a slot (gauge shipit_in_flight)
        self.client: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task] = set()

    def set_weights(self, epoch: int, weights: dict[str, float]) -> None:
        """Route new requests by these weights from now on (arms not named keep weight 0)."""
        self.epoch = epoch
        self.weights = {a: float(weights.get(a, 0.0)) for a in self.cfg.weights()}
        self.table = assign.bucket_table(self.weights)

    # --- admission -------------------------------------------------------------------------------------------
    async def acquire(self) -> bool:
        """Take a concurrency slot, waiting in a bounded queue; False means answer 429."""
        lim = self.cfg.limits
        if self.slots.locked():
            if self.waiting >= lim.max_queue:
                return False
            self.waiting += 1
            try:
                await asyncio.wait_for(self.slots.acquire(), lim.queue_timeout_s)
            except asyncio.TimeoutError:
                return False
            finally:
                self.waiting -= 1
        else:
            await self.slots.acquire()
        self.active += 1
        return True

    def release(self) -> None:
        """Give back a slot taken by `acquire`."""
        self.active -= 1
        self.slots.release()

    async def read_body(self, request: Request) -> bytes | None:
        """The request body, or None when it exceeds the limit (checked before and while reading)."""
        limit = self.cfg.limits.max_body_bytes
        if int(request.headers.get("content-length") or 0) > limit:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    # --- upstream --------------------------------------------------------------------------------------------
    async def open(self, pool: Pool, path: str, payload: bytes, stream: bool):
        """Send to a replica, moving to another replica on 5xx, 401/403, timeouts and connection errors before the
        first byte.

        Returns (response, replica, first bytes, attempts); a streamed response stays open after the first chunk.
        """
        tried: set[str] = set()
        headers = {"content-type": "application/json"}
        if pool.api_key:
            headers["authorization"] = f"Bearer {pool.api_key}"
        last = Upstream5xx(503, f"no healthy replica for arm '{pool.arm}'", "no_healthy_upstream")
        for attempt in range(self.cfg.limits.retries + 1):
            rep = pool.choose(tried)
            if rep is None:
                break
            tried.add(rep.url)
            if attempt:
                self.metrics.retries.labels(self.cfg.experiment, pool.arm).inc()
            resp, held = None, False
            rep.in_flight += 1  # least-loaded choice; a stream releases it when it ends (relay)
            try:
                resp = await self.client.post(rep.url + path, data=payload, headers=headers)
                if resp.status >= 500:
                    text = (await resp.read())[:300].decode(errors="replace")
                    raise Upstream5xx(502, f"arm '{pool.arm}' replica answered {resp.status}: {text}",
                                      "upstream_error")
                if resp.status in (401, 403):
                    # The client passed the router's auth; the replica refusing the router's own key is the arm's
                    # misconfiguration, not the client's: a gateway error that the error guardrail counts (a passed
                    # through 401 read as a client error, and an arm failing every request showed error_rate 0).
                    raise Upstream5xx(502, f"arm '{pool.arm}' replica refused the router's credentials "
                                           f"({resp.status}): check the arm's upstream_api_key_env", "upstream_auth")
                if stream and resp.status < 400:
                    it = resp.content.iter_any()
                    first = await anext(it, b"")
                else:
                    first, it = await resp.read(), None
                rep.breaker.success()
                held = it is not None
                return resp, rep, first, it
            except Upstream5xx as exc:
                last = exc
            except asyncio.TimeoutError:
                last = Upstream5xx(504, f"arm '{pool.arm}' replica timed out", "upstream_timeout")
            except (aiohttp.ClientError, OSError) as exc:
                last = Upstream5xx(502, f"arm '{pool.arm}' replica failed: {type(exc).__name__}", "upstream_error")
            except BaseException:  # cancelled (the client left): drop the connection so the upstream stops too
                if resp is not None:
                    resp.close()
                # Neither a success nor a failure of the replica; a half-open trial left unanswered would keep its
                # circuit half-open with the trial "out" forever, and the replica would never be chosen again.
                rep.breaker.abandon()
                raise
            finally:
                if not held:
                    rep.in_flight -= 1
            rep.breaker.failure()
            if resp is not None:
                resp.close()
        raise last

    async def until_disconnect(self, request: Request, coro):
        """Await `coro` in this task, cancelling it (and raising ClientGone) if the client disconnects first."""
        me, gone = asyncio.current_task(), asyncio.Event()

        async def watch():
            while (await request.receive())["type"] != "http.disconnect":
                pass
            gone.set()
            me.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            return await coro
        except asyncio.CancelledError:
            if not gone.is_set():
                raise
            me.uncancel()
            raise ClientGone() from None
        finally:
            watcher.cancel()

    def shadow_copy(self, payload: dict, path: str, user: str, b: int) -> None:
        """Send a copy to the shadow arm in the background; its answer is recorded and discarded."""
        arm = self.cfg.shadow.arm
        plain = {k: v for k, v in payload.items() if k != "stream_options"}  # vLLM refuses them without a stream
        body = json.dumps({**plain, "model": self.cfg.arm(arm).upstream_model, "stream": False}).encode()

        async def run():
            t0, row = time.monotonic(), {}
            try:
                resp, rep, data, _ = await self.open(self.pools[arm], path, body, False)
                resp.release()
                row = {"status": resp.status, "replica": rep.url, **usage_of(data)}
            except Upstream5xx as exc:
                row = {"status": exc.status, "error": str(exc)}
            with contextlib.suppress(StoreUnavailable):  # a shadow answer nobody waits for
                await self.record(dict(id=uuid.uuid4().hex, arm=arm, bucket=b, user=user, forced=0, shadow=1,
                                       endpoint=path, stream=0, latency_ms=(time.monotonic() - t0) * 1000, **row))

        task = asyncio.ensure_future(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def record(self, row: dict, text: tuple | None = None) -> None:
        """Commit one event row, with its (prompt, answer) when recording text, before the client sees the end of
        the answer, and count it in the metrics."""
        row = {"ts": time.time(), "experiment": self.cfg.experiment, "epoch": self.epoch, **row}
        await self.store.arecord(row, text)
        if not row.get("shadow"):
            self.metrics.outcome(row["arm"], row["status"], row["latency_ms"] / 1000,
                                 row["ttft_ms"] / 1000 if row.get("ttft_ms") is not None else None,
                                 (row.get("prompt_tokens"), row.get("completion_tokens")))

    # --- the proxy -------------------------------------------------------------------------------------------
    async def proxy(self, request: Request) -> Response:
        """POST /v1/chat/completions and /v1/completions."""
        t0 = time.monotonic()
        exp = self.cfg.experiment
        raw = await self.read_body(request)
        if raw is None:
            self.metrics.rejected.labels(exp, "too_large").inc()
            return error(413, f"request body exceeds {self.cfg.limits.max_body_bytes} bytes", "invalid_request_error",
                         "request_too_large")
        try:
            payload = json.loads(raw)
            assert isinstance(payload, dict)
        except (ValueError, AssertionError):
            return error(400, "the body must be a JSON object", "invalid_request_error", "invalid_json")
        forced = request.headers.get("x-shipit-arm")
        if forced is not None and forced not in self.pools:
            return error(400, f"X-Shipit-Arm '{forced}' is not an arm; arms: {', '.join(self.pools)}",
                         "invalid_request_error", "unknown_arm", "X-Shipit-Arm")
        if not self.store.available:
            return store_down(self.store.down)
        if not await self.acquire():
            self.metrics.rejected.labels(exp, "queue_full").inc()
            return error(429, "the router is at capacity; retry later", "rate_limit_error", "queue_full",
                         headers={"retry-after": str(self.cfg.limits.retry_after_s)})
        released = False
        try:
            user = str(payload.get("user") or request.headers.get("x-user-id") or uuid.uuid4().hex)
            b = assign.bucket(self.cfg.salt_value, user)
            arm = forced or assign.pick(self.table, b)
            rid = os.urandom(16).hex()
            path = request.scope["path"]
            stream = bool(payload.get("stream"))
            shadow = self.cfg.shadow
            if shadow and not forced and arm != shadow.arm and assign.in_shadow(self.cfg.salt_value, user, shadow.share):
                self.shadow_copy(payload, path, user, b)
            payload["model"] = self.upstream_model[arm]
            tally = None
            if stream:  # the true token count is in vLLM's usage event, dropped again if the client did not ask
                options = payload.get("stream_options") if isinstance(payload.get("stream_options"), dict) else {}
                tally = StreamTally(drop_usage=not options.get("include_usage"))
                payload["stream_options"] = {**options, "include_usage": True}
            asked = prompt_of(payload) if self.cfg.record_text else None
            row = dict(id=rid, arm=arm, bucket=b, user=user, forced=int(forced is not None), shadow=0, endpoint=path,
                       stream=int(stream))
            hdrs = {"x-shipit-arm": arm, "x-shipit-request-id": rid, "x-shipit-experiment": exp}
            try:
                resp, rep, first, it = await self.until_disconnect(
                    request, self.open(self.pools[arm], path, json.dumps(payload).encode(), stream))
            except Upstream5xx as exc:
                await self.record({**row, "status": exc.status, "error": str(exc), "latency_ms": ms(t0)})
                return error(exc.status, str(exc), "upstream_error", exc.code, headers=hdrs)
            except ClientGone:
                await self.record({**row, "status": 499, "error": "client disconnected", "latency_ms": ms(t0)})
                return Response(status_code=499)
            ttft = ms(t0)
            row["replica"] = rep.url
            hdrs["content-type"] = resp.headers.get("content-type", "application/json")
            if "content-encoding" in resp.headers:  # bytes pass through as the upstream encoded them
                hdrs["content-encoding"] = resp.headers["content-encoding"]
            if it is None:
                resp.release()
                await self.record({**row, "status": resp.status, "latency_ms": ms(t0), "ttft_ms": ttft,
                                   **usage_of(first)}, None if asked is None else (asked, answer_text(first)))
                return Response(first, status_code=resp.status, headers=hdrs)
            released = True
            return StreamingResponse(self.relay(resp, rep, first, it, tally, row, t0, ttft, asked),
                                     status_code=resp.status, headers=hdrs)
        except StoreUnavailable as exc:  # the answer is dropped: a client never gets what was not recorded
            return store_down(str(exc))
        finally:
            if not released:
                self.release()

    async def relay(self, resp, rep, first: bytes, it, tally: StreamTally, row: dict, t0: float, ttft: float,
                    asked=None):
        """Pass the stream through event by event; the closing `data: [DONE]` is held back until the outcome is
        committed, so a client that saw it has its row, and one whose row could not be committed never sees it."""
        status, err = resp.status, None
        kept = [first] if asked is not None else None  # the answer's bytes, only when recording text
        out, held = hold_done(tally.feed(first))
        try:
            if out:
                yield out
            try:
                async for chunk in it:
                    if kept is not None:
                        kept.append(chunk)
                    out = tally.feed(chunk)
                    if not out:
                        continue
                    if held:  # something after [DONE]: not the end after all
                        yield held
                    out, held = hold_done(out)
                    yield out
                if rest := tally.flush():
                    yield held + rest
                    held = b""
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                rep.breaker.failure()
                status, err = 502, f"upstream died mid-stream: {type(exc).__name__}"
                yield sse_error(err)  # an event the upstream never finished is dropped: it would garble this one
        except BaseException:  # the client left before [DONE] (held back, so it cannot have seen it)
            status, err = 499, "client disconnected"
            raise
        finally:
            try:
                commit = self.record({**row, "status": status, "error": err, "latency_ms": ms(t0), "ttft_ms": ttft,
                                      **tally.tokens},
                                     None if kept is None else (asked, stream_text(b"".join(kept))))
                # A client that left cancels this task, and anyio cancels again at every await: shielded, the
                # commit of its 499 (a round trip with PostgreSQL) still runs to the end.
                await (asyncio.shield(commit) if status == 499 else commit)
            finally:
                self.release()
                rep.in_flight -= 1
                if status == 200:
                    resp.release()
                else:
                    resp.close()  # drop the connection: an abandoned upstream stops generating
        if held:
            yield held


def hold_done(chunk: bytes) -> tuple[bytes, bytes]:
    """(what to send now, the closing `data: [DONE]` event to send once the row is committed) of a chunk."""
    i = chunk.rfind(b"data: [DONE]")
    return (chunk[:i], chunk[i:]) if i >= 0 and not chunk[i + 12:].strip() else (chunk, b"")


def store_down(why: str | None) -> JSONResponse:
    """503 while the event store cannot be reached."""
    return error(503, f"the A/B event store is unavailable ({why}); retry later", "server_error",
                 "events_unavailable", headers={"retry-after": "1"})


def ms(t0: float) -> float:
    return (time.monotonic() - t0) * 1000


def compute_fresh(cfg: ABConfig, fn):
    """Run a statistics function on a connection of its own (safe from a worker thread)."""
    from shipit.serve.events import connect

    conn = connect(cfg.events)
    try:
        return fn(conn, cfg)
    finally:
        conn.close()
