"""A local Hugging Face model: batched sampling, and next-token log-probabilities for AI feedback."""

from __future__ import annotations

from shipit.models.check import require_model
from shipit.data.generators import Conversation, Generator, GeneratorSettings, as_messages, ends_with_prefill
from shipit.errors import UserError


class HFGenerator(Generator):
    """transformers' `generate` on a model directory, in this process (CUDA when available)."""

    name = "hf"
    can_prefill = True

    def __init__(self, settings: GeneratorSettings):
        from shipit.models.load import load_for_eval

        if settings.model is None:
            raise UserError("generator: backend 'hf' needs model (a Hugging Face model directory)")
        require_model(settings.model, "generator.model",
                     hint="expected a Hugging Face model directory")
        self.settings = settings
        self.model, self.tokenizer, _ = load_for_eval(settings.model, settings.dtype)
        self.device = self.model.device
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def _render(self, prompt: Conversation) -> str:
        """The chat-templated text the answer follows."""
        msgs = as_messages(prompt)
        prefill = ends_with_prefill(msgs)  # continue the assistant's message instead of opening a new one
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=not prefill,
                                                  continue_final_message=prefill)

    def _encode(self, prompts: list[Conversation]):
        texts = [self._render(p) for p in prompts]
        return self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)

    def generate(self, prompts, *, temperature=0.0, top_p=1.0, max_new_tokens=None, seed=0):
        """Batched answers; sampling with `temperature`/`top_p`, greedy at temperature 0."""
        import torch

        from shipit.models.generate import prompt_batch, seeded

        sample = temperature > 0
        kwargs = dict(do_sample=sample, max_new_tokens=max_new_tokens or self.settings.max_new_tokens,
                      pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id)
        if sample:
            kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
        out = []
        bs = self.settings.batch_size
        with seeded(seed, self.device, enabled=sample):
            for i in range(0, len(prompts), bs):
                enc = prompt_batch(self.model, self.tokenizer, [self._render(p) for p in prompts[i:i + bs]])
                with torch.no_grad():
                    gen = self.model.generate(**enc, **kwargs)
                out += self.tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        return [o.strip() for o in out]

    def _choice_ids(self, choice: str) -> list[int]:
        """Token ids that spell `choice` alone, with or without a leading space or bracket."""
        ids = set()
        for variant in (choice, " " + choice, "(" + choice, " (" + choice):
            tok = self.tokenizer.encode(variant, add_special_tokens=False)
            if len(tok) == 1:
                ids.add(tok[0])
        if not ids:
            raise UserError(f"generator: the tokenizer of {self.settings.model} has no single token for {choice!r}")
        return sorted(ids)

    def choice_logprobs(self, prompts, choices=("A", "B")):
        """Next-token log-probability of each choice (log-sum over its spellings) after the generation prompt."""
        import torch

        ids = {c: self._choice_ids(c) for c in choices}
        out = []
        bs = self.settings.batch_size
        for i in range(0, len(prompts), bs):
            enc = self._encode(prompts[i:i + bs])
            with torch.no_grad():
                logits = self.model(**enc).logits[:, -1, :].float()  # left padding: last position is the next token
            logp = torch.log_softmax(logits, dim=-1)
            for row in logp:
                out.append({c: float(torch.logsumexp(row[ids[c]], dim=0)) for c in choices})
        return out

    def completion_logprobs(self, prompts, completions):
        """Summed log-probability and token count of each completion as the answer to its prompt; the prompt is
        run once for all of its completions."""
        from shipit.models.likelihood import choice_logprobs

        by_head: dict[str, list[int]] = {}
        for i, p in enumerate(prompts):
            by_head.setdefault(self._render(p), []).append(i)
        out: list = [None] * len(prompts)
        bs = self.settings.batch_size
        for head, rows in by_head.items():
            for j in range(0, len(rows), bs):
                chunk = rows[j:j + bs]
                sums = choice_logprobs(self.model, self.tokenizer, head, [completions[i] for i in chunk])
                for i, lp in zip(chunk, sums):
                    out[i] = (lp, len(self.tokenizer(completions[i], add_special_tokens=False)["input_ids"]))
        return out

    def describe(self):
        return {"backend": self.name, "model": str(self.settings.model)}

    def close(self):
        self.model = None
