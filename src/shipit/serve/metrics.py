"""Prometheus metrics of the router, labelled by experiment and arm, in a registry of their own per app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The router's counters, histograms and gauges."""

    def __init__(self, experiment: str):
        self.exp = experiment
        self._children: dict[tuple, tuple] = {}
        self.registry = r = CollectorRegistry()
        labels = ["experiment", "arm"]
        self.requests = Counter("shipit_requests", "Requests by arm and status", labels + ["status"], registry=r)
        self.latency = Histogram("shipit_request_latency_seconds", "End-to-end latency", labels,
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("shipit_ttft_seconds", "Time to first byte of the upstream answer", labels,
                              buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("shipit_tokens", "Tokens by arm and kind", labels + ["kind"], registry=r)
        self.retries = Counter("shipit_upstream_retries", "Attempts moved to another replica", labels, registry=r)
        self.rejected = Counter("shipit_rejected", "Requests refused by the router", ["experiment", "reason"],
                                registry=r)
        self.feedback = Counter("shipit_feedback", "Feedback events", labels, registry=r)
        self.weight = Gauge("shipit_arm_weight", "Current weight of each arm", labels, registry=r)
        self.in_flight = Gauge("shipit_in_flight", "Requests being served", ["experiment"], registry=r)
        self.queued = Gauge("shipit_queued", "Requests waiting for a slot", ["experiment"], registry=r)
        self.healthy = Gauge("shipit_replica_healthy", "1 when the replica passes health checks",
                             labels + ["replica"], registry=r)
        self.breaker = Gauge("shipit_breaker_open", "1 when the replica's circuit is open", labels + ["replica"],
                             registry=r)

    def outcome(self, arm: str, status: int, latency_s: float, ttft_s: float | None, tokens: tuple) -> None:
        """Count one finished request."""
        key = (arm, status)
        children = self._children.get(key)
        if children is None:  # labels() costs microseconds on every call: bind each (arm, status) once
            children = self._children[key] = (
                self.requests.labels(self.exp, arm, str(status)), self.latency.labels(self.exp, arm),
                self.ttft.labels(self.exp, arm), self.tokens.labels(self.exp, arm, "prompt"),
                self.tokens.labels(self.exp, arm, "completion"))
        requests, latency, ttft, prompt, completion = children
        requests.inc()
        latency.observe(latency_s)
        if ttft_s is not None:
            ttft.observe(ttft_s)
        if tokens[0]:
            prompt.inc(tokens[0])
        if tokens[1]:
            completion.inc(tokens[1])

    def render(self, pools: dict, weights: dict, in_flight: int = 0, queued: int = 0) -> bytes:
        """The exposition text, with gauges of weights, load and replica state refreshed."""
        self.in_flight.labels(self.exp).set(in_flight)
        self.queued.labels(self.exp).set(queued)
        for arm, w in weights.items():
            self.weight.labels(self.exp, arm).set(w)
        for arm, pool in pools.items():
            for rep in pool.replicas:
                self.healthy.labels(self.exp, arm, rep.url).set(int(rep.healthy))
                self.breaker.labels(self.exp, arm, rep.url).set(int(rep.breaker.state == "open"))
        return generate_latest(self.registry)
