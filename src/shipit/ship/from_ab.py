"""Preference pairs from an A/B experiment: the same prompt answered by two arms, the better-rated answer chosen."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Callable

from shipit.errors import UserError

HINT = "set `record_text: true` in the A/B config so the router stores prompts and answers"


def events_path(source: str | Path) -> Path:
    """The events SQLite file of SOURCE: an A/B config YAML (its `events`) or the file itself."""
    source = Path(source)
    if source.suffix in (".yaml", ".yml"):
        from shipit.serve.config import load_ab_config

        source = load_ab_config(source).events
        if isinstance(source, str):  # a PostgreSQL DSN
            raise UserError("from-ab reads a SQLite event store; copy the experiment into one first: "
                            "`shipit ab copy --from CONFIG --to ab.sqlite`, then `shipit data from-ab ab.sqlite`")
    if not source.is_file():
        raise UserError(f"from-ab: events file not found: {source}")
    return source


def normalize(prompt) -> list[dict] | None:
    """The user messages of a chat request, whitespace collapsed; None for anything else (a completion prompt)."""
    if not isinstance(prompt, list):
        return None
    out = []
    for m in prompt:
        if not isinstance(m, dict) or m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, list):  # OpenAI content parts: keep the text ones
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        out.append({"role": "user", "content": " ".join(str(content or "").split())})
    return out or None


def read_rated(path: Path) -> list[dict]:
    """Successful live requests with their prompt, answer and latest feedback score (None when unrated)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "requests" not in tables:
            raise UserError(f"from-ab: {path} is not an A/B event store (no table 'requests')")
        if "payloads" not in tables or not conn.execute("SELECT 1 FROM payloads LIMIT 1").fetchone():
            raise UserError(f"from-ab: {path} has no recorded prompts and answers; {HINT}")
        rows = conn.execute(
            "SELECT r.id, r.arm, p.prompt, p.answer, "
            "(SELECT f.score FROM feedback f WHERE f.request_id = r.id ORDER BY f.rowid DESC LIMIT 1) "
            "FROM requests r JOIN payloads p ON p.request_id = r.id "
            "WHERE r.shadow = 0 AND r.status < 400 ORDER BY r.rowid").fetchall()
    except sqlite3.DatabaseError as exc:
        raise UserError(f"from-ab: cannot read {path}: {exc}") from None
    finally:
        conn.close()
    return [{"id": i, "arm": arm, "prompt": json.loads(p), "answer": a, "score": s} for i, arm, p, a, s in rows]


def by_judges(llm_margin: float) -> tuple[Callable[[dict], tuple], Callable[[dict, dict], str | None]]:
    """Answers ranked by their judges' own verdicts instead of the blended feedback score (rows carry `rules`, the
    rules judge's 0/1, and `llm`, the model judge's verdict on its own scale, e.g. PMI in nats per token).
    The rules decide first: an answer they accept is preferred to one they reject, at any gap. Two answers the rules
    both accept are ordered by the model judge when its verdicts differ by at least `llm_margin`. Two answers the
    rules both reject make no pair: the more on-topic of two harmful answers is no answer to learn from."""
    def order(r: dict) -> tuple:
        return -r["rules"], -r["llm"]

    def prefers(best: dict, worst: dict) -> str | None:
        if best["rules"] > worst["rules"]:
            return "rules"
        if best["rules"] == worst["rules"] >= 1 and best["llm"] - worst["llm"] >= llm_margin:
            return "llm"
        return None
    return order, prefers


def disjoint(ranked: list[dict], prefers: Callable[[dict, dict], str | None]) -> list[tuple[dict, dict]]:
    """The most pairs `ranked` (best first) makes with no answer in two: its k best against its k worst in rank order
    (the best against the k-th worst, ..., the k-th best against the worst), for the largest k whose every pair is
    preferred. Preference only grows as the better answer rises or the worse falls, so no other matching has more
    pairs; nesting them instead (best against worst, then next best against next worst while the gap holds) stops
    at the first close middle pair: [1.0, 0.6, 0.5, 0.0] at margin 0.5 makes one pair nested, two here."""
    n = len(ranked)
    for k in range(n // 2, 0, -1):
        pairs = [(ranked[i], ranked[n - k + i]) for i in range(k)]
        if all(prefers(b, w) for b, w in pairs):
            return pairs
    return []


def make_pairs(rows: list[dict], min_margin: float, across: str = "arms",
               per_prompt: str = "one", llm_margin: float | None = None) -> tuple[list[dict], dict]:
    """Preference pairs over each prompt's rated answers; a pair needs a score gap >= min_margin (and > 0).

    `across="arms"` compares arms' mean scores per prompt (one pair per arm pair: the arms' answers disagree);
    `across="answers"` compares every rated answer to the prompt, whichever arm gave it (with sampled decoding one
    arm's answers differ too): the best against the worst, one pair per prompt; with `per_prompt="disjoint"`, as many
    pairs as hold the gap with no answer in two (see `disjoint`).
    With `llm_margin` (answers only), the answers are ranked and paired `by_judges` and min_margin is not used."""
    if llm_margin is not None and across != "answers":
        raise ValueError("llm_margin pairs answers: use across='answers'")
    order, prefers = by_judges(llm_margin) if llm_margin is not None else (
        lambda r: -r["score"],
        lambda b, w: "feedback" if b["score"] - w["score"] >= min_margin and b["score"] != w["score"] else None)
    groups: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    prompts: dict[str, list[dict]] = {}
    for r in rows:
        msgs = normalize(r["prompt"])
        if msgs is None or r["score"] is None or not r["answer"] or (llm_margin is not None and "rules" not in r):
            continue
        key = json.dumps(msgs, sort_keys=True)
        prompts[key] = msgs
        groups[key][r["arm"]].append(r)
    pairs, both, below, same, why = [], 0, 0, 0, defaultdict(int)

    def add(key, win, sw, rw, lose, sl, rl, judges=None):
        chosen = max(rw, key=lambda x: x["score"])["answer"]  # max/min keep the earliest on ties
        rejected = min(rl, key=lambda x: x["score"])["answer"]
        if chosen == rejected:
            return False
        pairs.append({"prompt": prompts[key], "chosen": [{"role": "assistant", "content": chosen}],
                      "rejected": [{"role": "assistant", "content": rejected}],
                      "arms": {"chosen": win, "rejected": lose},
                      "scores": {"chosen": round(sw, 6), "rejected": round(sl, 6)},
                      "request_ids": {"chosen": [x["id"] for x in rw], "rejected": [x["id"] for x in rl]},
                      **({"judges": judges} if judges else {})})
        return True

    for key, by_arm in groups.items():
        both += len(by_arm) >= 2
        if across == "answers":
            answers = sorted((r for rs in by_arm.values() for r in rs), key=order)
            if len(answers) < 2:
                continue
            matched = disjoint(answers if per_prompt == "disjoint" else [answers[0], answers[-1]], prefers)
            below += not matched  # a prompt none of whose answers differ enough
            for best, worst in matched:
                reason = prefers(best, worst)
                judges = {"by": reason, **{k: {"rules": x["rules"], "llm": round(x["llm"], 6)}
                                           for k, x in (("chosen", best), ("rejected", worst))}} \
                    if llm_margin is not None else None
                if add(key, best["arm"], best["score"], [best], worst["arm"], worst["score"], [worst], judges):
                    why[reason] += 1
                else:
                    same += 1
            continue
        if len(by_arm) < 2:
            continue
        summary = {arm: (sum(x["score"] for x in rs) / len(rs), rs) for arm, rs in by_arm.items()}
        for a, b in itertools.combinations(sorted(summary), 2):
            (sa, ra), (sb, rb) = summary[a], summary[b]
            if abs(sa - sb) < min_margin or sa == sb:
                below += 1
                continue
            (win, sw, rw), (lose, sl, rl) = sorted([(a, sa, ra), (b, sb, rb)], key=lambda t: -t[1])
            if not add(key, win, sw, rw, lose, sl, rl):
                same += 1
    metrics = {"requests": len(rows), "rated": sum(r["score"] is not None for r in rows), "prompts": len(groups),
               "prompts_both_arms": both, "pairs": len(pairs), "below_margin": below, "same_answer": same,
               "across": across, **({"per_prompt": per_prompt} if across == "answers" else {}),
               **({"llm_margin": llm_margin, "by_rules": why["rules"], "by_llm": why["llm"]}
                  if llm_margin is not None else {})}
    return pairs, metrics


def write_pairs(pairs: list[dict], path: Path) -> None:
    """One JSON row per pair (TRL conversational preference format plus provenance)."""
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")


def run(source: str | Path, out: str | Path, min_margin: float = 0.5) -> tuple[Path, dict]:
    """Turn an experiment's recorded answers and feedback into `pairs.jsonl` in a `data/from-ab` stage output."""
    from shipit.registry import stage_output

    if not 0 <= min_margin <= 1:
        raise UserError(f"from-ab: --min-margin must be in [0, 1] (scores are in [0, 1]), got {min_margin}")
    path = events_path(source)
    pairs, metrics = make_pairs(read_rated(path), min_margin)
    with stage_output(out, "data/from-ab", {"source": str(source), "min_margin": min_margin},
                      {"events": path}) as run_:
        write_pairs(pairs, run_.dir / "pairs.jsonl")
        run_.metrics = metrics
    return Path(out) / "pairs.jsonl", metrics
