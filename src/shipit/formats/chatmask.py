"""Answer-only loss masks for any chat template, markers or not.

TRL builds assistant masks from `{% generation %}` markers, and patches only the templates it knows; stock ChatML
(SmolLM2), Llama 3 and Qwen2.5 templates carry no markers. Here the mask comes from the template itself: an assistant
turn is what rendering the conversation up to and including it adds to rendering the conversation before it with the
generation prompt. That holds only for a template that is prefix-stable (rendering more messages never rewrites
earlier text), which is checked for every turn rather than assumed.
"""

from __future__ import annotations

from shipit.errors import UserError


def _render(tokenizer, messages: list[dict], generation_prompt: bool) -> list[int]:
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False,
                                              add_generation_prompt=generation_prompt))


def assistant_mask(tokenizer, messages: list[dict], where: str = "chat template") -> tuple[list[int], list[int]]:
    """Token ids of `messages` as the chat template renders them, and 1 on every assistant turn's tokens.

    A turn's tokens start after the generation prompt (`<|im_start|>assistant\\n` is not trained on) and end with its
    end-of-turn token (`<|im_end|>`, `<|eot_id|>`: trained on, so the model learns to stop); whitespace the template
    puts after the end-of-turn token is left out, since generation stops before it.
    """
    if not tokenizer.chat_template:
        raise UserError(f"{where}: the tokenizer has no chat template, so chat rows cannot be rendered; use a model "
                        "with one or give plain text rows")
    ids = _render(tokenizer, messages, False)
    mask = [0] * len(ids)
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        before, upto = _render(tokenizer, messages[:i], True), _render(tokenizer, messages[:i + 1], False)
        if upto[:len(before)] != before or ids[:len(upto)] != upto:
            raise UserError(f"{where}: the template is not prefix-stable (rendering message {i + 1} rewrites the text "
                            "before it), so answer-only loss cannot be masked; add {% generation %} markers to the "
                            "template or set assistant_only_loss: false")
        start, end = len(before), len(upto)
        while end > start and not tokenizer.decode(ids[end - 1:end]).strip():
            end -= 1
        mask[start:end] = [1] * (end - start)
    if 1 not in mask:
        first = next((m.get("content", "") for m in messages), "")[:40]
        raise UserError(f"a chat row has no assistant answer to train on (starts {first!r}); add an assistant "
                        "message or set assistant_only_loss: false")
    return ids, mask


def has_generation_markers(template) -> bool:
    """True when the chat template marks assistant text with `{% generation %}` (TRL masks it itself then)."""
    from trl.chat_template_utils import has_generation_markers as trl_has

    return bool(template) and trl_has(template)
