"""The router's control routes (feedback, models, health, metrics, admin) and its background watcher."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shipit.serve.auth import load_hashes
from shipit.serve.config import load_ab_config
from shipit.serve.events import StoreUnavailable, latest_weights, record_decision
from shipit.serve.router import Router, compute_fresh, error, store_down

log = logging.getLogger("shipit.router")


async def feedback(router: Router, request: Request) -> Response:
    """POST /v1/feedback {request_id, score in [0, 1] | thumbs up/down}."""
    try:
        body = json.loads(await request.body())
        rid = body["request_id"]
        score = body.get("score")
        if score is None:
            thumbs = body["thumbs"]
            score = 1.0 if thumbs in ("up", True, 1) else 0.0 if thumbs in ("down", False, 0) else None
        score = float(score)
        assert 0.0 <= score <= 1.0
    except (ValueError, KeyError, TypeError, AssertionError):
        return error(400, "feedback is {request_id, score in [0, 1]} or {request_id, thumbs: up|down}",
                     "invalid_request_error", "invalid_feedback")
    try:
        arm = await router.store.run(router.store.rate, rid, score)
    except StoreUnavailable as exc:
        return store_down(str(exc))
    if arm is None:
        return error(404, f"no request with id {rid!r}", "invalid_request_error", "unknown_request", "request_id")
    router.metrics.feedback.labels(router.cfg.experiment, arm).inc()
    return JSONResponse({"ok": True, "request_id": rid, "score": score})

async def models(router: Router, request: Request) -> Response:
    """GET /v1/models: the experiment (routed by assignment) and each arm (reachable with X-Shipit-Arm)."""
    ids = [router.cfg.experiment] + list(router.pools)
    return JSONResponse({"object": "list", "data": [{"id": i, "object": "model", "created": 0,
                                                     "owned_by": "shipit"} for i in ids]})

async def health(router: Router, request: Request) -> Response:
    """GET /health: 200 while every weighted arm has a usable replica and the event store is reachable (a load
    balancer then moves traffic to router replicas that can still record it)."""
    ready = {a: sum(r.available() for r in p.replicas) for a, p in router.pools.items()}
    events = router.store.available
    ok = events and all(ready[a] > 0 for a, w in router.weights.items() if w > 0)
    return JSONResponse({"status": "ok" if ok else "degraded", "replicas": ready,
                         "events": "ok" if events else "unavailable"}, status_code=200 if ok else 503)

async def metrics_route(router: Router, request: Request) -> Response:
    """GET /metrics in the Prometheus text format."""
    body = router.metrics.render(router.pools, router.weights, router.active, router.waiting)
    return Response(body, media_type="text/plain; version=0.0.4")

async def admin_stats(router: Router, request: Request) -> Response:
    """GET /admin/stats: the statistics of `shipit ab status` as JSON."""
    from shipit.serve.stats import compute

    return JSONResponse(await asyncio.to_thread(compute_fresh, router.cfg, compute))

async def admin_weights(router: Router, request: Request) -> Response:
    """POST /admin/weights {weights: {arm: w}}: change the split now (logged as a decision)."""
    try:
        weights = {str(k): float(v) for k, v in json.loads(await request.body())["weights"].items()}
        assert set(weights) <= set(router.cfg.weights()) and sum(weights.values()) > 0
    except (ValueError, KeyError, TypeError, AttributeError, AssertionError):
        return error(400, f"expected {{weights: {{arm: weight}}}} over arms {list(router.cfg.weights())}",
                     "invalid_request_error", "invalid_weights")
    try:
        decision = await router.store.run(record_decision, router.store.conn, router.cfg.experiment, "set-weights",
                                          weights, "admin API")
    except StoreUnavailable as exc:
        return store_down(str(exc))
    router.set_weights(decision, weights)
    return JSONResponse({"weights": router.weights, "epoch": router.epoch})

async def watch(router: Router) -> None:
    """Pick up weight decisions from the event store, config edits, and (if enabled) run the policy."""
    from shipit.serve import policy, stats

    last_policy = time.monotonic()
    while True:
        await asyncio.sleep(router.cfg.reload_s)
        try:
            # Through the store: inline for SQLite, in its thread for PostgreSQL (a round trip, or a server that
            # stopped answering, must not stall the event loop).
            await router.store.run(reload_config, router)
            latest = await router.store.run(latest_weights, router.store.conn, router.cfg.experiment)
            if latest and latest[0] != router.epoch:
                router.set_weights(*latest)
            if router.cfg.policy.auto and time.monotonic() - last_policy >= router.cfg.policy.interval_s:
                last_policy = time.monotonic()
                s = await asyncio.to_thread(compute_fresh, router.cfg, stats.compute)
                d = await router.store.run(policy.apply, router.store.conn, router.cfg, s)
                if d:
                    log.warning("policy decision %s: %s -> %s", d["kind"], d["reason"], d["weights"])
                    router.set_weights(d["id"], d["weights"])
        except Exception:  # the watcher must survive a bad edit or a locked database
            log.exception("router watch loop")

def reload_config(router: Router) -> None:
    """Apply an edited config file: weights (logged as a decision), keys, shadow, limits of the policy."""
    if not router.config_path:
        return
    mtime = router.config_path.stat().st_mtime
    if mtime == router.mtime:
        return
    router.mtime = mtime
    new = load_ab_config(router.config_path)
    if [a.name for a in new.arms] != [a.name for a in router.cfg.arms]:
        log.error("config reload: arms changed; restart the router to apply")
        return
    router.digests = load_hashes(new.auth, str(router.config_path))
    old_weights = router.cfg.weights()
    router.cfg = new
    if new.weights() != old_weights:
        router.set_weights(record_decision(router.store.conn, new.experiment, "config-reload", new.weights(),
                                         f"{router.config_path} edited"), new.weights())
