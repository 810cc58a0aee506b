"""A causal-LM face on an ONNX Runtime session, so bench tasks and verification treat ONNX like HF models."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

# The file an ONNX model directory holds (the onnx-int8 quantizer writes it; this class reads it).
ONNX_FILE = "model.onnx"


class OrtCausalLM:
    """Logits and greedy generation from a cache-free ONNX graph `(input_ids, attention_mask, position_ids)`."""

    def __init__(self, path: Path, threads: int = 0):
        import onnxruntime as ort
        import torch

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(Path(path) / ONNX_FILE), opts, providers=["CPUExecutionProvider"])
        self._device_probe = torch.zeros(1)

    def parameters(self):
        """A CPU tensor, so callers asking for the device get `cpu`."""
        yield self._device_probe

    def eval(self):
        return self

    def to(self, device):
        return self

    def __call__(self, input_ids, attention_mask=None, **_):
        import torch

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # as HF generate does for left padding
        logits = self.session.run(None, {"input_ids": input_ids.cpu().numpy(),
                                         "attention_mask": attention_mask.cpu().numpy(),
                                         "position_ids": positions.cpu().numpy()})[0]
        return SimpleNamespace(logits=torch.from_numpy(logits))

    def generate(self, input_ids, attention_mask=None, max_new_tokens: int = 16, eos_token_id=None, pad_token_id=0,
                 do_sample: bool = False, min_new_tokens: int = 0, temperature: float = 1.0, top_p: float = 1.0, **_):
        """Greedy decoding, or sampling at `temperature` from the smallest set of tokens holding `top_p` of the
        probability (recomputes the whole sequence each step: the graph has no KV cache)."""
        import torch

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool)
        for step in range(max_new_tokens):
            logits = self(input_ids, attention_mask).logits[:, -1]
            if eos_token_id is not None and step < min_new_tokens:
                logits[:, eos_token_id] = float("-inf")
            nxt = sample(logits, temperature, top_p) if do_sample else logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, pad_token_id), nxt)
            input_ids = torch.cat([input_ids, nxt[:, None]], 1)
            attention_mask = torch.cat([attention_mask, (~done).long()[:, None]], 1)
            if eos_token_id is not None:
                done |= nxt == eos_token_id
            if done.all():
                break
        return input_ids


def sample(logits, temperature: float, top_p: float):
    """One token per row drawn from softmax(logits / temperature), cut to the nucleus `top_p` (torch's generator)."""
    import torch

    probs = torch.softmax(logits.float() / temperature, -1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        outside = sorted_p.cumsum(-1) - sorted_p >= top_p  # the tokens after the nucleus is full
        probs = probs.scatter(-1, order, sorted_p.masked_fill(outside, 0.0))
    return torch.multinomial(probs, 1)[:, 0]
