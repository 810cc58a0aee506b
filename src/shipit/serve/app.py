"""The router's ASGI app: its routes, the key check in front of them, and the background tasks of its lifetime."""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial
from pathlib import Path

import aiohttp
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Route

from shipit.serve import routes
from shipit.serve.auth import authorized
from shipit.serve.config import ABConfig, load_ab_config
from shipit.serve.router import Router, error
from shipit.serve.upstream import health_loop

OPEN = {"/health", "/metrics"}
PROXIED = {"/v1/chat/completions", "/v1/completions"}


def create_app(config: ABConfig | str | Path, config_path: str | Path | None = None) -> Starlette:
    """The router app for `config` (a model, or a YAML path); the YAML file, when known, is watched for edits."""
    path = Path(config_path).resolve() if config_path else None
    if not isinstance(config, ABConfig):
        path = Path(config).resolve()
        config = load_ab_config(path)
    check_routable(config, path)
    router = Router(config, path)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        lim = config.limits
        # aiohttp, not httpx, for the upstream hop: measured 0.27 ms vs 1.27 ms per request against the same stub
        # (benchmarks/RESULTS.md), and the hop sits on every request's latency.
        router.client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=lim.connect_timeout_s, sock_read=lim.read_timeout_s),
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0), auto_decompress=False)
        tasks = [asyncio.ensure_future(health_loop(router.client, router.pools, config.health)),
                 asyncio.ensure_future(routes.watch(router))]
        yield
        for t in tasks + list(router.tasks):
            t.cancel()
        await router.client.close()
        await router.store.aclose()

    app = Starlette(routes=[
        Route("/v1/chat/completions", router.proxy, methods=["POST"]),
        Route("/v1/completions", router.proxy, methods=["POST"]),
        Route("/v1/models", partial(routes.models, router), methods=["GET"]),
        Route("/v1/feedback", partial(routes.feedback, router), methods=["POST"]),
        Route("/health", partial(routes.health, router), methods=["GET"]),
        Route("/metrics", partial(routes.metrics_route, router), methods=["GET"]),
        Route("/admin/stats", partial(routes.admin_stats, router), methods=["GET"]),
        Route("/admin/weights", partial(routes.admin_weights, router), methods=["POST"]),
    ], middleware=[Middleware(Guard, router=router)], lifespan=lifespan)
    app.state.router = router
    return app


class Guard:
    """ASGI middleware: every route but /health and /metrics needs an accepted API key."""

    def __init__(self, app, router: Router):
        self.app, self.router = app, router

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] not in OPEN:
            auth = dict(scope["headers"]).get(b"authorization", b"").decode(errors="replace")
            r = self.router
            if (r.cfg.auth.required or r.digests) and not authorized(auth, r.digests):
                r.metrics.rejected.labels(r.cfg.experiment, "unauthorized").inc()
                resp = error(401, "missing or invalid API key (Authorization: Bearer KEY)", "invalid_request_error",
                             "invalid_api_key")
                return await resp(scope, receive, send)
            if scope["path"] in PROXIED and scope["method"] == "POST":
                # The hot path skips Starlette's routing and exception layers: each costs on every request.
                response = await self.router.proxy(Request(scope, receive, send))
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


def check_routable(cfg: ABConfig, path: str | Path | None) -> None:
    """Every arm needs upstream URLs before the router can start."""
    from shipit.errors import UserError

    missing = [a.name for a in cfg.arms if not a.upstreams]
    if missing:
        raise UserError(f"{path or 'config'}: field 'arms': arm(s) {', '.join(missing)} have no `upstreams`; "
                        f"`shipit route` needs running servers' URLs (or `shipit serve --config` launches `model`)")
