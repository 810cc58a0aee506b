"""Upstream replicas of each arm: active health checks with ejection, and a circuit breaker per replica."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp

from shipit.serve.config import Health


@dataclass
class Breaker:
    """Opens after `failures` consecutive 5xx/timeouts; after `reset_s` lets one trial through (half-open)."""

    failures: int
    reset_s: float
    consecutive: int = 0
    opened_at: float | None = None
    trial_out: bool = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - self.opened_at >= self.reset_s else "open"

    def allow(self) -> bool:
        """Whether a request may go to this replica now (claims the single half-open trial)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self.trial_out:
            self.trial_out = True
            return True
        return False

    def success(self) -> None:
        """A response below 500 (4xx included: the client's fault, not the replica's)."""
        self.consecutive, self.opened_at, self.trial_out = 0, None, False

    def abandon(self) -> None:
        """The request ended with no verdict (the client left): a half-open trial is given back for the next one."""
        self.trial_out = False

    def failure(self) -> None:
        """A 5xx, a timeout or a connection error."""
        self.consecutive += 1
        self.trial_out = False
        if self.opened_at is not None or self.consecutive >= self.failures:
            self.opened_at = time.monotonic()


@dataclass
class Replica:
    """One upstream server of an arm."""

    url: str
    breaker: Breaker
    healthy: bool = True
    ok_streak: int = 0
    fail_streak: int = 0
    in_flight: int = 0

    def available(self) -> bool:
        return self.healthy and self.breaker.state != "open"


@dataclass
class Pool:
    """The replicas of one arm, chosen least-loaded among those healthy with a closed (or trial) circuit."""

    arm: str
    replicas: list[Replica]
    api_key: str | None = None
    _rr: int = field(default=0, repr=False)

    def choose(self, exclude: set[str] = frozenset()) -> Replica | None:
        """A replica to try next, or None when every replica is ejected, open, or already tried."""
        n = len(self.replicas)
        self._rr += 1
        order = sorted(range(n), key=lambda i: (self.replicas[i].in_flight, (i - self._rr) % n))
        for i in order:
            r = self.replicas[i]
            if r.url not in exclude and r.healthy and r.breaker.allow():
                return r
        return None


def make_pools(arms, health: Health, keys: dict[str, str | None]) -> dict[str, Pool]:
    """One Pool per arm from the config's upstream URLs."""
    return {a.name: Pool(a.name, [Replica(u, Breaker(health.breaker_failures, health.breaker_reset_s))
                                  for u in a.upstreams], keys.get(a.name)) for a in arms}


async def check_once(client: aiohttp.ClientSession, replica: Replica, health: Health) -> None:
    """Probe GET /health once and update the replica's ejection state."""
    try:
        async with client.get(f"{replica.url}/health", timeout=aiohttp.ClientTimeout(total=health.timeout_s)) as r:
            ok = r.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        ok = False
    if ok:
        replica.ok_streak, replica.fail_streak = replica.ok_streak + 1, 0
        if not replica.healthy and replica.ok_streak >= health.healthy_after:
            replica.healthy = True
    else:
        replica.fail_streak, replica.ok_streak = replica.fail_streak + 1, 0
        if replica.healthy and replica.fail_streak >= health.unhealthy_after:
            replica.healthy = False


async def health_loop(client: aiohttp.ClientSession, pools: dict[str, Pool], health: Health) -> None:
    """Probe every replica every `interval_s` until cancelled."""
    while True:
        await asyncio.gather(*(check_once(client, r, health) for p in pools.values() for r in p.replicas))
        await asyncio.sleep(health.interval_s)
