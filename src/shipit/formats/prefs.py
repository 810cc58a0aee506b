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

