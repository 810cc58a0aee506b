"""Any OpenAI-compatible chat endpoint (a hosted API, vLLM, a local server), with logprobs when it gives them."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from shipit.data.generators import Generator, GeneratorSettings, as_messages, ends_with_prefill, normalize_choice
from shipit.errors import UserError


class OpenAIGenerator(Generator):
    """Chat completions from `base_url`; one request per prompt, `batch_size` of them in flight."""

    name = "openai"

    def __init__(self, settings: GeneratorSettings):
        from openai import OpenAI

        self.settings = settings
        self.base_url = settings.base_url
        self.client = OpenAI(base_url=settings.base_url, api_key=os.environ.get(settings.api_key_env, "unused"),
                             timeout=settings.timeout_s, max_retries=settings.max_retries)

    def _call(self, **kwargs):
        import openai

        try:
            return self.client.chat.completions.create(model=self.settings.model_name, **kwargs)
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise UserError(f"generator endpoint {self.base_url} is unreachable: {cause}") from None
        except openai.APIStatusError as exc:
            raise UserError(f"generator endpoint {self.base_url} answered HTTP {exc.status_code}: "
                            f"{str(exc.message)[:200]}") from None

    def _map(self, fn, items):
        with ThreadPoolExecutor(max_workers=self.settings.batch_size) as pool:
            return list(pool.map(fn, items))

    def _prefill(self, msgs) -> dict:
        """Request fields that make the endpoint continue a final assistant message (vLLM's; a hosted API would
        refuse them, so only when `can_prefill`)."""
        if self.can_prefill and ends_with_prefill(msgs):
            return {"extra_body": {"continue_final_message": True, "add_generation_prompt": False}}
        return {}

    def generate(self, prompts, *, temperature=0.0, top_p=1.0, max_new_tokens=None, seed=0):
        """One chat completion per prompt."""
        def one(prompt):
            msgs = as_messages(prompt)
            r = self._call(messages=msgs, temperature=temperature, top_p=top_p, seed=seed,
                           max_tokens=max_new_tokens or self.settings.max_new_tokens, **self._prefill(msgs))
            return (r.choices[0].message.content or "").strip()

        return self._map(one, prompts)

    def choice_logprobs(self, prompts, choices=("A", "B")):
        """Top log-probabilities of the first answer token; None when the endpoint returns none."""
        def one(prompt):
            msgs = as_messages(prompt)
            r = self._call(messages=msgs, temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=20,
                           **self._prefill(msgs))
            lp = r.choices[0].logprobs
            if lp is None or not lp.content:
                return None
            found: dict[str, float] = {}
            for t in lp.content[0].top_logprobs or []:
                c = normalize_choice(t.token)
                if c in choices and c not in found:  # the most likely spelling of each choice
                    found[c] = t.logprob
            # A choice outside the top list is far less likely than any listed one.
            floor = min([t.logprob for t in lp.content[0].top_logprobs or []] + [0.0]) - 10.0
            return {c: found.get(c, floor) for c in choices}

        out = self._map(one, prompts)
        return None if any(o is None for o in out) else out

    def describe(self):
        return {"backend": self.name, "base_url": self.base_url, "model": self.settings.model_name}
