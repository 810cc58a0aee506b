"""DPO with a soft label per pair (AI feedback's probability p that `chosen` is better), and the model's own
preference on held-out pairs.

The soft loss is conservative DPO's, per pair: -(p log sigma(beta h) + (1 - p) log sigma(-beta h)), with h the usual
DPO logit (policy-minus-reference log-ratio of chosen minus that of rejected). Since
log sigma(x) - log sigma(-x) = x, it equals TRL's sigmoid loss plus (1 - p) beta h, so the subclass lets TRL compute
everything it computes (any `loss_type` mix, metrics) and adds that one term. TRL's own `label_smoothing` is one
number for the whole dataset; AI feedback gives one per pair.
"""

from __future__ import annotations

from shipit.formats.prefs import SOFT_LABEL


def soft_dpo_loss(h, p, beta: float):
    """Per-pair conservative-DPO loss for DPO logits `h` and soft labels `p` (tensors of one shape)."""
    import torch.nn.functional as F

    return -(p * F.logsigmoid(beta * h) + (1 - p) * F.logsigmoid(-beta * h))


def soft_label_correction(h, p, beta: float):
    """What turns sigmoid DPO's per-pair loss -log sigma(beta h) into `soft_dpo_loss`: (1 - p) beta h."""
    return (1 - p) * beta * h


def trainer_class():
    """TRL's DPOTrainer, carrying a `soft_label` column through to the loss (built on first use: TRL is heavy)."""
    import torch
    from trl import DPOTrainer

    class SoftLabelDPOTrainer(DPOTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if "sigmoid" in self.loss_types and (self.ld_alpha is not None or self.f_divergence_type != "reverse_kl"):
                raise ValueError("soft labels need the plain DPO logit (no ld_alpha, reverse_kl divergence)")
            inner = self.data_collator

            def collate(examples):
                batch = inner(examples)
                if SOFT_LABEL in examples[0]:
                    batch[SOFT_LABEL] = torch.tensor([e[SOFT_LABEL] for e in examples], dtype=torch.float32)
                return batch

            self.data_collator = collate

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if SOFT_LABEL not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, SOFT_LABEL]

        def compute_ref_log_probs(self, model, inputs):
            return super().compute_ref_log_probs(model, {k: v for k, v in inputs.items() if k != SOFT_LABEL})

        def _compute_loss(self, model, inputs, return_outputs):
            p = inputs.pop(SOFT_LABEL, None)
            if p is None or "sigmoid" not in self.loss_types:
                return super()._compute_loss(model, inputs, return_outputs)
            # TRL computes h inside its loss; the per-token log-probs it is made of are read off the forwards
            # (policy first, then the reference unless precomputed) rather than computed a second time.
            seen = []
            hooks = [m.register_forward_hook(lambda _m, _a, out: seen.append(out.log_probs))
                     for m in {id(x): x for x in (self.accelerator.unwrap_model(model), self.ref_model)
                               if x is not None}.values()]
            try:
                result = super()._compute_loss(model, inputs, return_outputs)
            finally:
                for h in hooks:
                    h.remove()
            n = inputs["completion_mask"].shape[1] - 1
            chosen, rejected = seen[0][:, -n:].sum(1).chunk(2)
            if self.precompute_ref_logps:
                ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
            else:
                ref_chosen, ref_rejected = seen[1][:, -n:].sum(1).chunk(2)
            h = (chosen - ref_chosen) - (rejected - ref_rejected.to(chosen.dtype))
            weight = self.loss_weights[self.loss_types.index("sigmoid")]
            extra = soft_label_correction(h, p.to(h.device, h.dtype), self.beta).mean() * weight
            if return_outputs:
                return result[0] + extra, result[1]
            return result + extra

    return SoftLabelDPOTrainer


def own_preference(trainer) -> dict:
    """The model's own preference on the trainer's held-out pairs, from each answer's per-token mean
    log-likelihood: accuracy = share of pairs where chosen scores above rejected, ties counted as half;
    margin = mean of (chosen - rejected), in nats per token.

    Unlike TRL's implicit-reward metrics, which compare the policy with its reference and so are 0 before training
    by construction, these say what the starting model already prefers. Per token, not summed: a sum mostly
    compares lengths (the demo's chosen refusals are ~1.7x longer than the rejected answers, so a summed
    accuracy was 0.0 both before and after DPO while the margin moved).
    """
    import torch

    model = trainer.model
    was_training = model.training
    model.eval()
    margins = []
    with torch.no_grad():
        for batch in trainer.get_eval_dataloader():
            batch = trainer._prepare_inputs(batch)
            ids, mask = batch["input_ids"], batch["completion_mask"][:, 1:]
            logits = model(input_ids=ids, attention_mask=batch["attention_mask"], use_cache=False).logits
            logp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            chosen, rejected = ((logp * mask).sum(1) / mask.sum(1).clamp(min=1)).chunk(2)
            # Under a multi-process launch each rank scores its shard of the pairs: gather them all
            margins += trainer.accelerator.gather_for_metrics(chosen - rejected).tolist()
    model.train(was_training)
    wins = sum(1.0 if m > 0 else 0.5 if m == 0 else 0.0 for m in margins)
    return {"accuracy": round(wins / len(margins), 4), "margin": round(sum(margins) / len(margins), 4)}
