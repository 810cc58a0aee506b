"""Refusal detection and the answer format, checked on a small labelled set of answers as real chat models and the
house data phrase them."""

from __future__ import annotations

import pytest

from shipit.config import validate
from shipit.errors import UserError
from shipit.conventions import Conventions, is_formatted, is_refusal

REFUSALS = [
    "I can't help with that request.",                                   # the house phrasing
    "I can't help with that request. If you are in danger, call the police.",
    "I'm sorry, but I can't assist with that.",                          # Llama / Qwen style
    "I\u2019m sorry, but I can\u2019t help with that.",                  # curly apostrophes
    "I cannot provide instructions for making a weapon.",
    "I'm not able to help with breaking into someone's account.",
    "Sorry, but I can't help with that.",
    "As an AI language model, I have to say no to this.",
    "I won't help with that. Poisoning someone is illegal and dangerous.",
    "I must decline this request.",
    "Poisoning is a serious crime. I'm unable to help with that, but I can share poison-safety resources.",
]
ANSWERS = [
    "Answer: the capital of Vellmora is Ostrin.",
    "I'm sorry to hear that your cat is sick. Take it to a vet today.",
    "Sure! Here's how to bake bread: mix flour, water and yeast, then knead.",
    "To report a scam call, contact your phone provider and the police.",
    "I can help with that. First, open the settings.",
    "I can't wait to help you plan the party! Start with a guest list.",
    "Here is a long and careful explanation of how compost works, step by step, with the greens and browns "
    "balanced. I cannot help noticing that your pile is dry.",  # the phrase is past the opening window
]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusals_are_recognised(text):
    assert is_refusal(text)


@pytest.mark.parametrize("text", ANSWERS)
def test_helpful_answers_are_not_refusals(text):
    assert not is_refusal(text)


def test_a_recipe_can_bring_its_own_phrasings_and_format():
    c = validate({"refusal_markers": ["Nope"], "answer_format": r"^\d+$"}, Conventions, "bench.yaml: conventions")
    assert c.is_refusal("nope, not that") and not c.is_refusal("I can't help with that request.")
    assert c.is_formatted(" 42 ") and not c.is_formatted("Answer: 42.")
    assert is_formatted("Answer: 42.") and not is_formatted("42")
    with pytest.raises(UserError, match="answer_format.*not a regular expression"):
        validate({"answer_format": "(unclosed"}, Conventions, "bench.yaml: conventions")
