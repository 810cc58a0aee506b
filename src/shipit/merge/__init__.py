"""Merge: mergekit configs run through mergekit's Python API, with validation and lineage."""
