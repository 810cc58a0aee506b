"""Sticky weighted assignment: hash(salt, user) -> one of 10,000 buckets -> an arm; no stored state."""

from __future__ import annotations

import hashlib

BUCKETS = 10_000


def bucket(salt: str, user: str) -> int:
    """The user's bucket in [0, 10000), the same on every replica and after every restart."""
    digest = hashlib.sha256(f"{salt}\x00{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def bucket_table(weights: dict[str, float]) -> list[tuple[int, str]]:
    """Cumulative bucket bounds per arm, in the given order, e.g. {a: 1, b: 3} -> [(2500, a), (10000, b)]."""
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("weights must sum to more than 0")
    table, acc = [], 0.0
    live = [(name, w) for name, w in weights.items() if w > 0]
    for i, (name, w) in enumerate(live):
        acc += w
        table.append((BUCKETS if i == len(live) - 1 else round(acc / total * BUCKETS), name))
    return table


def pick(table: list[tuple[int, str]], b: int) -> str:
    """The arm whose bucket range holds `b`."""
    for bound, name in table:
        if b < bound:
            return name
    return table[-1][1]


def in_shadow(salt: str, user: str, share: float) -> bool:
    """Whether this user's traffic is copied to the shadow arm (an independent hash of the same user)."""
    return share > 0 and bucket(salt + "\x00shadow", user) < round(share * BUCKETS)
