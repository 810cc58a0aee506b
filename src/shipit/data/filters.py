"""Filters over scored rows: near-duplicate removal (MinHash LSH), threshold, top-k%, topic balance, pairs."""

from __future__ import annotations

import random
import re
from collections import defaultdict


def shingles(text: str, n: int = 3) -> set[str]:
    """Word n-grams of lower-cased text (the whole text when it is shorter than n words)."""
    words = re.findall(r"\w+", text.lower())
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def near_duplicates(texts: list[str], threshold: float = 0.8, num_perm: int = 128, n: int = 3,
                    seed: int = 1) -> list[int]:
    """Indices of texts whose estimated Jaccard similarity to an earlier kept text reaches `threshold`."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    dropped = []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=num_perm, seed=seed)
        for s in shingles(text, n):
            m.update(s.encode())
        if lsh.query(m):
            dropped.append(i)
        else:
            lsh.insert(str(i), m)
    return dropped


def above_threshold(rows: list[dict], min_score: float | None, key: str = "score") -> list[dict]:
    """Rows whose score is at least `min_score` (all of them when it is None)."""
    return rows if min_score is None else [r for r in rows if r[key] >= min_score]


def top_percent(rows: list[dict], percent: float, key: str = "score") -> list[dict]:
    """The best `percent`% of rows by score (at least one when any), in their original order."""
    if percent >= 100 or not rows:
        return rows
    k = max(1, round(len(rows) * percent / 100))
    best = sorted(range(len(rows)), key=lambda i: (-rows[i][key], i))[:k]
    return [rows[i] for i in sorted(best)]


def balance(rows: list[dict], per_group: int | None, key: str = "topic", seed: int = 0) -> list[dict]:
    """At most `per_group` rows per value of `key` (a seeded sample of each group), so no topic dominates."""
    if per_group is None:
        return rows
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups[str(r.get(key))].append(i)
    rng = random.Random(seed)
    keep = sorted(i for idx in groups.values() for i in (idx if len(idx) <= per_group else rng.sample(idx, per_group)))
    return [rows[i] for i in keep]


def best_worst_pairs(candidates: list[dict], margin: float, key: str = "score") -> tuple[dict, dict] | None:
    """(best, worst) of one prompt's candidates when the score gap is at least `margin`, else None."""
    if len(candidates) < 2:
        return None
    ranked = sorted(candidates, key=lambda r: -r[key])
    best, worst = ranked[0], ranked[-1]
    return (best, worst) if best[key] - worst[key] >= margin else None
