"""Data: formats, mixing, chat templates (and, later, synthetic generation and preference pairs)."""
