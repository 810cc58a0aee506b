"""Bench: tasks (capability, alignment, safety, efficiency), runner, report."""
