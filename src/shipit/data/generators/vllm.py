"""vLLM: shipit starts vLLM's OpenAI server on a model directory and generates through it."""

from __future__ import annotations

from shipit.data.generators import Generator, GeneratorSettings
from shipit.data.generators.openai import OpenAIGenerator
from shipit.errors import UserError


class VLLMGenerator(Generator):
    """A `VLLMServer` from the serving environment, spoken to as an OpenAI endpoint; stopped on close()."""

    name = "vllm"
    can_prefill = True

    def __init__(self, settings: GeneratorSettings):
        from shipit.models.vllm_server import VLLMServer

        if settings.model is None:
            raise UserError("generator: backend 'vllm' needs model (a Hugging Face model directory)")
        self.server = VLLMServer(settings.model, name=settings.model_name, python=settings.vllm_python,
                                 dtype=settings.dtype, extra_args=["--max-logprobs", "20"]).start()
        try:
            self.client = OpenAIGenerator(settings.model_copy(update={
                "backend": "openai", "base_url": self.server.base_url, "model_name": self.server.served_name}))
            # vLLM continues a final assistant message when asked to (OpenAI's own API has no such field).
            self.client.can_prefill = True
        except BaseException:
            self.server.stop()
            raise
        self.settings = settings

    def generate(self, prompts, **kwargs):
        """Answers from the vLLM server."""
        return self.client.generate(prompts, **kwargs)

    def choice_logprobs(self, prompts, choices=("A", "B")):
        """First-token log-probabilities from vLLM's `top_logprobs`."""
        return self.client.choice_logprobs(prompts, choices)

    def describe(self):
        return {"backend": self.name, "model": str(self.settings.model)}

    def close(self):
        self.server.stop()
