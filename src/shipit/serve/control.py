"""`shipit ab ...`: statistics and weight decisions, read from and written to the experiment's event store."""

from __future__ import annotations

import json
from pathlib import Path

from shipit.errors import UserError
from shipit.serve.config import ABConfig, is_dsn, load_ab_config
from shipit.serve.events import COLUMNS, INSERT, QUOTED, connect, decisions, exclusive, latest_weights, record_decision
from shipit.serve.policy import solo


def _open(config_path: Path, read_only: bool = False) -> tuple[ABConfig, object]:
    cfg = load_ab_config(config_path)
    if read_only and not is_dsn(cfg.events) and not Path(cfg.events).is_file():
        # connect() would create an empty store and report n=0 for a mistyped path
        raise UserError(f"{config_path}: field 'events': event store not found: {cfg.events} (it is created when "
                        "the router starts; check the path)")
    return cfg, connect(cfg.events)


def _fmt(x, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def status(config_path: Path, as_json: bool = False) -> str:
    """The experiment's statistics as a table (or JSON), with the latest decisions."""
    from shipit.serve.stats import compute

    cfg, conn = _open(config_path, read_only=True)
    try:
        s = compute(conn, cfg)
        s["decisions"] = decisions(conn, cfg.experiment, 5)
    finally:
        conn.close()
    if as_json:
        return json.dumps(s, indent=2, default=float)
    lines = [f"experiment {cfg.experiment}  control {s['control']}  primary {s['primary_metric']}  "
             f"weights {s['weights']}",
             f"{'arm':14} {'n':>7} {'success':>8} {'errors':>7} {'feedback':>8} {'score':>6} "
             f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'ttft50':>7}"]
    for arm, a in s["arms"].items():
        lat = a["latency_ms"]
        lines.append(f"{arm + (' (shadow)' if a.get('shadow') else ''):14} {a['n']:>7} {_fmt(a['success_rate']):>8} "
                     f"{_fmt(a['error_rate']):>7} {_fmt(a['feedback_rate']):>8} {_fmt(a['feedback_score'], '.2f'):>6} "
                     f"{_fmt(lat[50], '.1f'):>8} {_fmt(lat[95], '.1f'):>8} {_fmt(lat[99], '.1f'):>8} "
                     f"{_fmt(a['ttft_ms'][50], '.1f'):>7}")
    srm = s["srm"]
    lines.append(f"SRM chi2 {srm['chi2']:.2f} (df {srm['df']}, n {srm['n']}) p {srm['p']:.3g}, "
                 f"always-valid p {srm['p_seq']:.3g}"
                 + ("  ** SAMPLE RATIO MISMATCH: do not trust the comparison **" if srm["flag"] else ""))
    for arm, t in s["tests"].items():
        m, b = t["msprt"], t["bayes"]
        g = ", ".join(f"{k} {'ok' if v else 'BREACH' if v is False else 'n/a'}" for k, v in t["guardrails"].items())
        ci = "[{:+.4f}, {:+.4f}]".format(*m["ci"]) if m.get("ci") else "(burn-in)"
        lines.append(f"{arm} vs {s['control']}: effect {_fmt(m['effect'], '+.4f')} {ci}  mSPRT p {m['p']:.3g}"
                     f"{' (significant)' if m['reject'] else ''}  P(B>A) {b['p_b_gt_a']:.3f}  "
                     f"loss(B) {b['loss_choose_b']:.4f} loss(A) {b['loss_choose_a']:.4f}  guardrails: {g}")
    for d in s["decisions"]:
        lines.append(f"decision #{d['id']} {d['kind']}: {d['weights']} ({d['reason']})")
    return "\n".join(lines)


def parse_weights(cfg: ABConfig, pairs) -> dict[str, float]:
    """`a=90 b=10` -> {a: 90, b: 10}, checked against the config's arms."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            example = next(iter(cfg.weights()))
            raise UserError(f"set-weights: {pair!r}: expected ARM=WEIGHT, e.g. {example}=90")
        if name not in cfg.weights():
            raise UserError(f"set-weights: '{name}' is not a live arm; arms: {', '.join(cfg.weights())}")
        try:
            out[name] = float(value)
            assert out[name] >= 0
        except (ValueError, AssertionError):
            raise UserError(f"set-weights: {pair!r}: expected ARM=WEIGHT with a weight >= 0, e.g. {name}=50") from None
    if sum(out.values()) <= 0:
        raise UserError("set-weights: the weights must sum to more than 0")
    return {a: out.get(a, 0.0) for a in cfg.weights()}


def _decide(config_path: Path, kind: str, weights_fn, reason: str) -> str:
    cfg, conn = _open(config_path)
    try:
        weights = weights_fn(cfg)
        before = (latest_weights(conn, cfg.experiment) or (0, cfg.weights()))[1]
        i = record_decision(conn, cfg.experiment, kind, weights, reason, {"before": before})
    finally:
        conn.close()
    return f"decision #{i} {kind}: {before} -> {weights} (a running router applies it within {cfg.reload_s:g}s)"


def set_weights(config_path: Path, pairs) -> str:
    """Record new weights."""
    return _decide(config_path, "set-weights", lambda cfg: parse_weights(cfg, pairs), "shipit ab set-weights")


def promote(config_path: Path, arm: str) -> str:
    """Record all live traffic going to `arm`."""
    def weights(cfg):
        if arm not in cfg.weights():
            raise UserError(f"promote: '{arm}' is not a live arm; arms: {', '.join(cfg.weights())}")
        return solo(cfg, arm)
    return _decide(config_path, "promote", weights, f"shipit ab promote {arm}")


def rollback(config_path: Path) -> str:
    """Record all live traffic going back to the control arm."""
    return _decide(config_path, "rollback", lambda cfg: solo(cfg, cfg.control_arm), "shipit ab rollback")


def store_of(where: str) -> tuple[str | Path, str | None]:
    """(events target, its experiment or None) of an A/B config YAML, a postgresql:// DSN or a SQLite file."""
    if is_dsn(where):
        return where, None
    path = Path(where)
    if path.suffix in (".yaml", ".yml"):
        cfg = load_ab_config(path)
        return cfg.events, cfg.experiment
    return path, None


def shown(target) -> str:
    """A store's name for messages: a file path, or host:port/db of a DSN (never its password)."""
    if is_dsn(target):
        from shipit.serve.events_pg import where

        return where(str(target))
    return str(target)


def copy(src: str, dst: str, experiment: str | None = None) -> str:
    """Copy experiments (with their feedback, payloads and decisions) from one event store to another."""
    (a_target, a_exp), (b_target, _) = store_of(src), store_of(dst)
    if not is_dsn(a_target) and not Path(a_target).is_file():
        raise UserError(f"ab copy: --from {src}: no event store at {a_target}")
    a, b = connect(a_target), connect(b_target)
    try:
        names = [experiment or a_exp] if experiment or a_exp else [
            r[0] for r in a.execute("SELECT experiment FROM requests UNION SELECT experiment FROM decisions")]
        for name in names:
            if b.execute("SELECT 1 FROM requests WHERE experiment = ? UNION ALL SELECT 1 FROM decisions "
                         "WHERE experiment = ? LIMIT 1", (name, name)).fetchone():
                raise UserError(f"ab copy: {shown(b_target)} already holds experiment '{name}'; copy into a store "
                                f"without it (its decision ids and arrival order would interleave)")
        lines = [copy_one(a, b, name) for name in names]
    finally:
        a.close()
        b.close()
    return "\n".join(lines) or f"ab copy: {shown(a_target)} holds no experiment"


def copy_one(a, b, name: str) -> str:
    """Copy one experiment in one transaction; decision ids are renumbered and each request's epoch with them."""
    n = {}
    with exclusive(b, name):
        epoch = {0: 0}
        old = a.execute("SELECT id, ts, experiment, kind, weights, reason, numbers FROM decisions "
                        "WHERE experiment = ? ORDER BY id", (name,)).fetchall()
        for d in old:
            epoch[d[0]] = b.execute("INSERT INTO decisions (ts, experiment, kind, weights, reason, numbers) "
                                    "VALUES (?, ?, ?, ?, ?, ?) RETURNING id", tuple(d[1:])).fetchone()[0]
        n["decisions"] = len(old)
        i = COLUMNS.index("epoch")
        rows = [tuple(epoch.get(v, v) if k == i else v for k, v in enumerate(r)) for r in a.execute(
            f"SELECT {', '.join(QUOTED)} FROM requests WHERE experiment = ? ORDER BY rowid", (name,)).fetchall()]
        b.executemany(INSERT, rows)
        n["requests"] = len(rows)
        # Feedback in arrival order: the latest score of a request is the one that counts.
        for table, what, order in (("feedback", "f.request_id, f.ts, f.score", "f.rowid"),
                                   ("payloads", "f.request_id, f.ts, f.prompt, f.answer", "f.request_id")):
            got = a.execute(f"SELECT {what} FROM {table} f JOIN requests r ON r.id = f.request_id "
                            f"WHERE r.experiment = ? ORDER BY {order}", (name,)).fetchall()
            b.executemany(f"INSERT INTO {table} ({what.replace('f.', '')}) VALUES "
                          f"({', '.join('?' * len(what.split(',')))})", [tuple(r) for r in got])
            n[table] = len(got)
    return f"copied experiment '{name}': " + ", ".join(f"{v} {k}" for k, v in n.items())
