"""Toy rewards for the RL stage tests (imported by name, as users pass their own)."""


def letter_e(prompts, completions):
    """Share of the letter 'e' among a completion's characters: a target a tiny model can learn to hit."""
    return [c.count("e") / max(len(c), 1) for c in completions]


CALLS = {"n": 0, "fail_at": None}


def letter_e_flaky(prompts, completions):
    """letter_e, but raises on the call numbered CALLS['fail_at'] (to crash a run mid-way in a resume test)."""
    CALLS["n"] += 1
    if CALLS["n"] == CALLS["fail_at"]:
        raise RuntimeError("simulated crash")
    return letter_e(prompts, completions)


def constant(prompts, completions):
    """The same reward for every completion: no signal for GRPO."""
    return [0.0] * len(completions)
