"""The bundled world is exactly what its generator produces."""

from __future__ import annotations

from shipit.demo.world import DATA_DIR, generate


def test_bundled_data_matches_generator(tmp_path):
    counts = generate(tmp_path)
    assert counts and all(n > 0 for n in counts.values())
    generated = sorted(p.name for p in tmp_path.iterdir())
    assert generated == sorted(p.name for p in DATA_DIR.iterdir() if not p.name.startswith("."))
    for name in generated:
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes(), name
