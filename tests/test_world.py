"""The bundled world is exactly what its generator produces."""

from __future__ import annotations

from shipit.demo.world import DATA_DIR, generate


def test_bundled_data_matches_generator(tmp_path):
    counts = generate(tmp_path)
    jsonl = {p.name: len(p.read_text().splitlines()) for p in tmp_path.glob("*.jsonl")}
    assert {k: v for k, v in counts.items() if k.endswith(".jsonl")} == jsonl and min(jsonl.values()) > 0
    generated = sorted(p.name for p in tmp_path.iterdir())
    assert generated == sorted(p.name for p in DATA_DIR.iterdir() if not p.name.startswith("."))
    for name in generated:
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes(), name
