"""Strict models of an A/B serving config (`serve/*.yaml`): arms, limits, auth, events, statistics policy."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from shipit.config import StrictModel, load_config
from shipit.errors import UserError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Arm(StrictModel):
    """One candidate of the experiment.

    Either `upstreams` (URLs of running OpenAI-compatible servers, e.g. `http://127.0.0.1:8001`) or `model`
    (a Hugging Face model directory that `shipit serve --config` launches with vLLM, `replicas` times) or both.
    """

    name: str
    weight: float = Field(ge=0)
    model: Path | None = None
    replicas: int = Field(1, ge=1, le=16)
    upstreams: list[str] = []
    model_name: str | None = None
    """Model name the upstream expects; default: the arm name (what `shipit serve --config` launches it as)."""
    upstream_api_key_env: str | None = None
    """Environment variable holding the key the router sends upstream (never shown to clients)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """dtype vLLM serves `model` in; 'auto' lets vLLM choose (on CPU, bfloat16 even for a float32 checkpoint)."""
    max_model_len: int | None = Field(None, ge=16)
    """Cap on the context length of `model`'s servers; default: the model's own."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("arm names are letters, digits, '.', '_' or '-' (at most 64), e.g. 'control'")
        return v

    @field_validator("upstreams")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if not re.match(r"^https?://[^/\s]+/?$", url):
                raise ValueError(f"upstream {url!r} must be a base URL like http://127.0.0.1:8001 (no path)")
        return [u.rstrip("/") for u in v]

    @model_validator(mode="after")
    def _source(self) -> "Arm":
        if not self.upstreams and self.model is None:
            raise ValueError(f"arm '{self.name}' needs `upstreams` (URLs) or `model` (a directory to serve)")
        if self.model is None and (self.dtype != "auto" or self.max_model_len is not None):
            raise ValueError(f"arm '{self.name}': dtype and max_model_len apply to the vLLM servers shipit starts "
                             "for `model`; this arm has none")
        return self

    @property
    def upstream_model(self) -> str:
        return self.model_name or self.name


class Shadow(StrictModel):
    """A shadow arm receives a copy of `share` of the traffic; its answers are discarded."""

    arm: str
    share: float = Field(ge=0, le=1)


class Limits(StrictModel):
    """Back-pressure and timeouts."""

    max_body_bytes: int = Field(1_000_000, ge=1024)
    max_concurrency: int = Field(64, ge=1)
    max_queue: int = Field(256, ge=0)
    queue_timeout_s: float = Field(5.0, gt=0)
    retry_after_s: int = Field(1, ge=1)
    connect_timeout_s: float = Field(2.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)
    """Longest silence allowed from an upstream (before the first byte, and between chunks)."""
    retries: int = Field(1, ge=0, le=8)
    """Extra attempts on other replicas of the same arm, only before the first byte reaches the client."""
    drain_s: float = Field(30.0, ge=0)
    """On SIGTERM, how long in-flight requests may take to finish."""


class Health(StrictModel):
    """Active health checks (GET /health on each replica) and passive circuit breaking."""

    interval_s: float = Field(2.0, gt=0)
    timeout_s: float = Field(1.0, gt=0)
    unhealthy_after: int = Field(2, ge=1)
    healthy_after: int = Field(1, ge=1)
    breaker_failures: int = Field(5, ge=1)
    """Consecutive 5xx/timeouts/connection errors that open a replica's circuit."""
    breaker_reset_s: float = Field(10.0, gt=0)
    """How long an open circuit stays open before one trial request is let through."""


class Auth(StrictModel):
    """Client API keys, kept only as SHA-256 hashes; plain keys come from the environment variable."""

    required: bool = True
    key_hashes: list[str] = []
    """`sha256:<64 hex>` of each accepted key (`shipit ab hash-key KEY` prints one)."""
    keys_env: str = "SHIPIT_API_KEYS"
    """Comma-separated plain keys, read at start and hashed at once."""

    @field_validator("key_hashes")
    @classmethod
    def _hashes(cls, v: list[str]) -> list[str]:
        for h in v:
            if not re.match(r"^sha256:[0-9a-f]{64}$", h):
                raise ValueError("key hashes look like sha256:<64 lowercase hex> (`shipit ab hash-key KEY`)")
        return v


class Guardrails(StrictModel):
    """Limits an arm must respect; a breach by a treatment arm triggers rollback."""

    max_error_rate: float = Field(0.05, ge=0, le=1)
    error_rate_margin: float = Field(0.02, ge=0, le=1)
    """Treatment 5xx rate may exceed control's by at most this (absolute). Breached only on evidence: the whole
    always-valid (1 - alpha) confidence sequence of (treatment - control) lies above the margin; holds (required to
    promote) once it lies wholly below; unknown in between."""
    max_p95_latency_ms: float = Field(10_000, gt=0)
    latency_margin: float = Field(0.25, ge=0)
    """Treatment p95 latency may exceed control's by at most this fraction."""
    primary_margin: float = Field(0.05, ge=0, le=1)
    """Treatment primary metric may fall below control's by at most this (absolute). Breached (rollback) only on
    evidence of harm: the upper end of the always-valid (1 - alpha) confidence sequence of (treatment - control) is
    below -margin, so under A/A a false breach happens with probability <= alpha (in fact about alpha/2: one side)
    however often the policy looks. Holds (required to promote) once the lower end is >= -margin: non-inferiority
    shown. In between it is unknown (None): no rollback, no promotion. Rolling back whenever non-inferiority is not
    yet shown would roll back most A/A experiments at their first look."""


class Policy(StrictModel):
    """Sequential decision policy: when to promote a winner or roll back a breach."""

    primary_metric: str = "success"
    alpha: float = Field(0.05, gt=0, lt=1)
    tau: float = Field(0.1, gt=0)
    """Standard deviation of the mSPRT normal mixture over the effect (in units of the metric)."""
    min_samples: int = Field(200, ge=1)
    """Requests per arm before any guardrail is judged."""
    burn_in: float = Field(20, ge=2)
    """Effective observations per arm (n x 4 x pooled variance: n at a 50% rate, n/5 at 95%) before the mSPRT and
    the confidence sequences count a look; below it a skewed 0/1 mean is too far from normal (benchmarks/RESULTS.md:
    type-I error <= alpha at 50/50, 90/10 and 99/1 splits with it)."""
    prob_threshold: float = Field(0.95, gt=0.5, lt=1)
    srm_p: float = Field(0.001, gt=0, lt=1)
    """Flag a sample-ratio mismatch (and block promotion) when the always-valid sequential SRM p-value of the
    current epoch's assignments falls below this; a correct split raises it with probability <= srm_p."""
    auto: bool = False
    interval_s: float = Field(10.0, gt=0)
    guardrails: Guardrails = Guardrails()

    @field_validator("primary_metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in ("success", "feedback"):
            raise ValueError("primary_metric must be one of: success, feedback")
        return v


class ABConfig(StrictModel):
    """An A/B experiment: arms with weights, sticky assignment salt, limits, auth, event store and policy."""

    experiment: str
    salt: str | None = None
    """Hash salt of the assignment; default: the experiment name. Changing it reshuffles every user."""
    control: str | None = None
    """The arm rollback returns to; default: the first arm."""
    arms: list[Arm] = Field(min_length=1)
    shadow: Shadow | None = None
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    events: Path | str = Path("ab-events.sqlite")
    """Event store of assignments, outcomes, feedback and decisions: a SQLite file (WAL; relative to the config
    file), or a PostgreSQL DSN `postgresql://user@host:5432/db` that several router replicas on several hosts share.
    Keep passwords out of the file: libpq reads PGPASSWORD (or ~/.pgpass), or give the whole DSN in `events_env`."""
    events_env: str | None = None
    """Environment variable holding the PostgreSQL DSN; when set, it replaces `events` (read at load)."""
    record_text: bool = False
    """Also store each request's prompt (messages) and answer text in the event store (table `payloads`), for
    `shipit data from-ab`. Off by default: it keeps what users wrote and what they were told."""
    reload_s: float = Field(1.0, gt=0)
    """How often the router re-reads weight decisions and the config file."""
    limits: Limits = Limits()
    health: Health = Health()
    auth: Auth = Auth()
    policy: Policy = Policy()

    @field_validator("experiment")
    @classmethod
    def _exp(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("experiment names are letters, digits, '.', '_' or '-', e.g. 'sft-vs-merged'")
        return v

    @field_validator("events", mode="before")
    @classmethod
    def _events(cls, v):
        # A DSN stays a string: as a Path, `postgresql://h/db` would collapse to `postgresql:/h/db`.
        return v if isinstance(v, str) and is_dsn(v) else Path(v)

    @model_validator(mode="after")
    def _refs(self) -> "ABConfig":
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control '{self.control}' is not an arm; arms: {', '.join(names)}")
        if self.shadow is not None and self.shadow.arm not in names:
            raise ValueError(f"shadow arm '{self.shadow.arm}' is not an arm; arms: {', '.join(names)}")
        live = [a for a in self.arms if self.shadow is None or a.name != self.shadow.arm]
        if not live or sum(a.weight for a in live) <= 0:
            raise ValueError("the weights of the non-shadow arms must sum to more than 0")
        return self

    @property
    def control_arm(self) -> str:
        return self.control or self.arms[0].name

    @property
    def salt_value(self) -> str:
        return self.salt or self.experiment

    def arm(self, name: str) -> Arm:
        """The arm called `name`."""
        return next(a for a in self.arms if a.name == name)

    def weights(self) -> dict[str, float]:
        """Configured weights of the arms that take live traffic (the shadow arm excluded)."""
        return {a.name: a.weight for a in self.arms if self.shadow is None or a.name != self.shadow.arm}


def is_dsn(events) -> bool:
    """Whether an `events` value names a PostgreSQL server rather than a SQLite file."""
    return isinstance(events, str) and events.startswith(("postgresql://", "postgres://"))


def load_ab_config(path: str | Path) -> ABConfig:
    """Load `serve/*.yaml`; the events path is relative to the config file, model paths to the working directory."""
    cfg = load_config(path, ABConfig)
    if cfg.events_env:
        dsn = os.environ.get(cfg.events_env, "")
        if not is_dsn(dsn):
            got = "is not set" if not dsn else "does not start with postgresql://"
            raise UserError(f"{path}: field 'events_env': environment variable {cfg.events_env} {got}; "
                            f"export {cfg.events_env}=postgresql://USER:PASSWORD@HOST:5432/DB")
        cfg.events = dsn
    if isinstance(cfg.events, Path) and not cfg.events.is_absolute():
        cfg.events = Path(path).resolve().parent / cfg.events
    return cfg
