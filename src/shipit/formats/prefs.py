"""Preference pairs: `{"prompt", "chosen", "rejected"}` rows, with optional soft labels from AI feedback."""

from __future__ import annotations

import random

from shipit.config import read_jsonl
from shipit.errors import UserError
from shipit.formats.mix import DatasetSpec, sample_by_weight

SOFT_LABEL = "soft_label"
"""Optional row field: probability in [0, 1] that `chosen` is the better answer (1.0 for a hard label)."""


def load_pairs(specs: list[DatasetSpec], seed: int = 0) -> list[dict]:
    """Preference rows from JSONL datasets, each sampled by its weight (one may be empty, e.g. a filtered
    intermediate; not all of them); a soft label outside [0, 1] is named by file:line."""
    rng = random.Random(seed)
    rows = []
    for spec in specs:
        path, picked = spec.path, []
        for i, row in enumerate(read_jsonl(path, ["prompt", "chosen", "rejected"], what="preference data",
                                           allow_empty=len(specs) > 1), 1):
            p = row.get(SOFT_LABEL, 1.0)
            if not isinstance(p, (int, float)) or not 0 <= p <= 1:
                raise UserError(f"{path}:{i}: field '{SOFT_LABEL}' must be a probability in [0, 1], got {p!r}")
            picked.append({"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"],
                           SOFT_LABEL: float(p)})
        rows += sample_by_weight(picked, spec.weight, rng)
    if not rows:
        raise UserError(f"{', '.join(str(s.path) for s in specs)}: no preference rows (an empty dataset cannot be "
                        "used)")
    return rows


def orient_soft_labels(rows: list[dict], copies: int = 4) -> list[dict]:
    """Turn soft labels into oriented pairs: round(p*copies) copies as given and the rest swapped.

    Training DPO on these is, in expectation, DPO with per-pair label smoothing 1-p (conservative DPO), using
    TRL's trainer unchanged. Rows with hard labels (p == 1) stay single.
    """
    out = []
    for r in rows:
        p = r[SOFT_LABEL]
        base = {"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
        if p == 1.0:
            out.append(base)
            continue
        keep = round(p * copies)
        swapped = {"prompt": r["prompt"], "chosen": r["rejected"], "rejected": r["chosen"]}
        out += [base] * keep + [swapped] * (copies - keep)
    return out
