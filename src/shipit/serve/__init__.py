"""Serve: vLLM launcher, A/B router, experiment statistics, event store."""
