"""shipit: base model -> post-training -> merge -> quantize -> bench -> A/B serving, in one tool."""

__version__ = "0.1.0"
