"""wav2vec 2.0 pretraining objectives for the :mod:`~ecgstudy.models.wav2vec2` encoder (ECG-FM's recipe).

- ``w2v``: masked prediction of quantised local features (Baevski et al. 2020, as in fairseq-signals).
  A segment of ``segment_s`` seconds is cropped from each record, augmented and lead-masked (RLM, the
  shared :class:`~ecgstudy.objectives.augment.AugmentConfig`); the encoder's local features (B, T', C) are
  layer-normed and quantised by a Gumbel-softmax product quantiser (``latent_groups`` codebooks of
  ``latent_vars`` entries, concatenated); ``mask_prob`` x T' / ``mask_length`` spans (at least
  ``min_spans``) of ``mask_length`` tokens, at distinct random starts and possibly overlapping, are replaced
  by the mask embedding before the transformer (every segment of a batch is then thinned at random to the
  batch's fewest masked steps, as fairseq does: about 30-45 % of the steps stay masked at batch 64). At each
  masked step the projected transformer output must pick its own quantised target among it and
  ``num_negatives`` distractors, drawn (with replacement) from the other masked steps of the same
  segment: cross-entropy over cosine similarities / ``logit_temp``, with distractors that share the
  target's code ignored. Extra losses as ECG-FM: codebook diversity (1 - perplexity of the mean code
  distribution / number of codes) x ``diversity_weight`` and the mean squared raw local feature x
  ``feature_pen_weight``. Gradients into the convolutional feature encoder are scaled by
  ``feature_grad_mult``.
- ``hybrid``: ECG-FM's W2V + CMSC + RLM. Two adjacent segments of each record (each augmented and
  lead-masked independently) go through the W2V loss in one pass, and CMSC (symmetric InfoNCE,
  ``cmsc_temperature``) pairs the time-averaged transformer outputs of the two segments of a record against
  the other records of the batch. As in fairseq-signals (``wav2vec2_cmsc`` with the ``wav2vec2_with_cmsc``
  criterion), those outputs come from the same time-masked forward pass as the W2V loss (no second,
  unmasked pass), and the pooled outputs are contrasted directly, without a projection head. Positives are
  the two segments of one record (ECG-FM pairs every segment of the same patient).

Every random draw of the objectives (crops, augmentations, span masks, distractors, Gumbel noise) comes from
the ``generator`` argument; dropout inside the encoder uses torch's global generator (seeded by the stage).
Losses are computed in float32, so both objectives run under bf16 autocast.

Gumbel temperature: ``gumbel_temp_start * gumbel_temp_decay ** step``, floored at ``gumbel_temp_end``, where
``step`` counts training batches in a buffer of the objective (so it is saved and restored with the
training state); ``gumbel_temp_decay = 1`` keeps it fixed at ``gumbel_temp_start``. In evaluation mode the
quantiser takes the arg-max code without noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ecgstudy.objectives.augment import AugmentConfig, augment, random_crop
from ecgstudy.objectives.base import (
    Objective,
    ObjectiveContext,
    adjacent_segments,
    info_nce,
    register,
)


@dataclass(frozen=True)
class W2VOptions:
    """params.yaml ``pretrain.objectives.w2v`` (ECG-FM's value of each field in the comment)."""

    segment_s: float = 4.0  # segment cropped per record, s (ECG-FM: 5 s at 500 Hz; 4 s leaves room for a random start)
    mask_prob: float = 0.65  # masked spans per segment = mask_prob x tokens / mask_length (ECG-FM: 0.65)
    mask_length: int = 10  # masked span length in tokens (ECG-FM: 10)
    min_spans: int = 2  # masked spans per segment at least (ECG-FM/fairseq: 2)
    num_negatives: int = 20  # distractors per masked step, from the segment's other masked steps (ECG-FM: 100)
    logit_temp: float = 0.1  # temperature of the cosine-similarity logits (ECG-FM: 0.1)
    latent_groups: int = 2  # codebooks of the product quantiser (ECG-FM: 2)
    latent_vars: int = 64  # entries per codebook (ECG-FM: 320)
    final_dim: int = 128  # size of the quantised targets and projected outputs compared (ECG-FM: 256)
    gumbel_temp_start: float = 2.0  # Gumbel-softmax temperature at step 0 (ECG-FM: 2)
    gumbel_temp_end: float = 0.5  # temperature floor (ECG-FM: 0.5)
    gumbel_temp_decay: float = 0.995  # factor per training batch; 1 = fixed (ECG-FM: 0.999995 over ~10^5+ updates)
    diversity_weight: float = 0.1  # weight of the codebook diversity loss (ECG-FM: 0.1)
    feature_pen_weight: float = 10.0  # weight of the mean squared raw local feature (ECG-FM: 10)
    feature_grad_mult: float = 0.1  # gradient scale into the convolutional feature encoder (ECG-FM: 0.1)
    dropout_features: float = 0.1  # dropout on the quantiser's input features (ECG-FM: 0.1)

    def validate(self) -> None:
        if self.segment_s <= 0:
            raise ValueError(f"segment_s must be > 0, got {self.segment_s}")
        if not 0 < self.mask_prob <= 1:
            raise ValueError(f"mask_prob must be in (0, 1], got {self.mask_prob}")
        if self.mask_length < 1 or self.min_spans < 2:
            raise ValueError("mask_length must be >= 1 and min_spans >= 2 (distractors need two masked steps)")
        if self.num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {self.num_negatives}")
        if self.logit_temp <= 0:
            raise ValueError(f"logit_temp must be > 0, got {self.logit_temp}")
        if self.latent_groups < 1 or self.latent_vars < 2:
            raise ValueError("latent_groups must be >= 1 and latent_vars >= 2")
        if self.final_dim < 1 or self.final_dim % self.latent_groups:
            raise ValueError(f"final_dim {self.final_dim} must be a multiple of latent_groups {self.latent_groups}")
        if not 0 < self.gumbel_temp_end <= self.gumbel_temp_start:
            raise ValueError("Gumbel temperatures need 0 < gumbel_temp_end <= gumbel_temp_start")
        if not 0 < self.gumbel_temp_decay <= 1:
            raise ValueError(f"gumbel_temp_decay must be in (0, 1], got {self.gumbel_temp_decay}")
        if self.diversity_weight < 0 or self.feature_pen_weight < 0 or self.feature_grad_mult < 0:
            raise ValueError("diversity_weight, feature_pen_weight and feature_grad_mult must be >= 0")
        if not 0 <= self.dropout_features < 1:
            raise ValueError(f"dropout_features must be in [0, 1), got {self.dropout_features}")


@dataclass(frozen=True)
class HybridOptions:
    """params.yaml ``pretrain.objectives.hybrid``: ECG-FM's W2V + CMSC + RLM."""

    w2v: W2VOptions = field(default_factory=W2VOptions)  # W2V part; segment_s is each of the two adjacent segments
    w2v_weight: float = 1.0  # weight of the W2V loss incl. its extra losses (ECG-FM: 1)
    cmsc_weight: float = 1.0  # weight of the CMSC loss (ECG-FM: 1)
    cmsc_temperature: float = 0.1  # CMSC InfoNCE temperature (ECG-FM: 0.1)

    def validate(self) -> None:
        self.w2v.validate()
        if self.w2v_weight < 0 or self.cmsc_weight < 0 or self.w2v_weight + self.cmsc_weight == 0:
            raise ValueError("w2v_weight and cmsc_weight must be >= 0 and not both 0")
        if self.cmsc_temperature <= 0:
            raise ValueError(f"cmsc_temperature must be > 0, got {self.cmsc_temperature}")


def span_mask(
    batch: int, length: int, prob: float, span: int, min_spans: int, generator: torch.Generator
) -> torch.Tensor:
    """Random time masks of spans, the same number of masked steps in every row (wav2vec 2.0's scheme).

    Each row gets ``int(prob * length / span + u)`` spans (u uniform in [0, 1), once per batch; at least
    ``min_spans``) at distinct random starts; spans may overlap. Rows are then thinned at random to the
    smallest count, so the masked steps of a batch form a (B, M) block.

    Returns
    -------
    Bool (batch, length), True at masked steps; M = mask.sum(1)[0] >= min(min_spans, length - 1).
    """
    if length < 2:
        raise ValueError(f"span masking needs at least 2 time steps, got {length}")
    n_spans = int(prob * length / span + float(torch.rand((), generator=generator)))
    n_spans = min(max(min_spans, n_spans), length - 1)
    span = min(span, length - n_spans)  # leave room for n_spans distinct starts
    n_starts = length - span + 1
    starts = torch.rand(batch, n_starts, generator=generator).argsort(dim=1)[:, :n_spans]  # (B, n_spans) distinct
    steps = (starts[:, :, None] + torch.arange(span)).reshape(batch, -1)  # (B, n_spans * span) < length
    mask = torch.zeros(batch, length, dtype=torch.bool).scatter_(1, steps, True)
    counts = mask.sum(dim=1)
    fewest = int(counts.min())
    if bool((counts > fewest).any()):
        scores = torch.rand(batch, length, generator=generator).masked_fill(~mask, -1.0)
        keep = scores.topk(fewest, dim=1).indices
        mask = torch.zeros_like(mask).scatter_(1, keep, True)
    return mask


class GumbelQuantiser(nn.Module):
    """Product quantiser with straight-through Gumbel-softmax code selection (wav2vec 2.0).

    ``groups`` codebooks of ``entries`` vectors of size ``out_dim / groups``; an input (N, in_dim) selects one
    entry per codebook and the selected entries are concatenated to (N, out_dim). Computed in float32.
    """

    def __init__(self, in_dim: int, groups: int, entries: int, out_dim: int):
        super().__init__()
        if out_dim % groups:
            raise ValueError(f"out_dim {out_dim} is not divisible by groups {groups}")
        self.groups, self.entries = groups, entries
        self.logits = nn.Linear(in_dim, groups * entries)
        nn.init.normal_(self.logits.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.logits.bias)
        self.codebook = nn.Parameter(torch.rand(groups, entries, out_dim // groups))

    @property
    def n_codes(self) -> int:
        """Total codebook entries (groups x entries), the maximum perplexity."""
        return self.groups * self.entries

    def forward(
        self, h: torch.Tensor, temperature: float, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise (N, in_dim) features.

        Parameters
        ----------
        temperature
            Gumbel-softmax temperature.
        generator
            Source of the Gumbel noise; None selects the arg-max codes without noise (evaluation).

        Returns
        -------
        (quantised (N, out_dim) float32, codes (N, groups) long, code perplexity, softmax perplexity); the
        perplexities are summed over groups (at most :attr:`n_codes`).
        """
        n = h.shape[0]
        with torch.autocast(h.device.type, enabled=False):
            logits = self.logits(h.float()).view(n, self.groups, self.entries)  # (N, G, V)
            hard_counts = F.one_hot(logits.argmax(-1), self.entries).float().mean(0)  # (G, V)
            code_ppl = torch.exp(-(hard_counts * torch.log(hard_counts + 1e-7)).sum(-1)).sum()
            mean_probs = logits.softmax(-1).mean(0)  # (G, V)
            prob_ppl = torch.exp(-(mean_probs * torch.log(mean_probs + 1e-7)).sum(-1)).sum()
            if generator is not None:
                uniform = torch.rand(logits.shape, generator=generator).to(logits.device)  # in [0, 1)
                exponential = (-torch.log(uniform.clamp_min(1e-10))).clamp_min(1e-10)  # > 0
                gumbel = -torch.log(exponential)
                soft = ((logits + gumbel) / temperature).softmax(-1)
                codes = soft.argmax(-1)  # (N, G)
                weights = F.one_hot(codes, self.entries).float() - soft.detach() + soft  # straight-through
            else:
                codes = logits.argmax(-1)
                weights = F.one_hot(codes, self.entries).float()
            quantised = torch.einsum("ngv,gvd->ngd", weights, self.codebook.float()).reshape(n, -1)
        return quantised, codes, code_ppl, prob_ppl


def _scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged; the gradient flowing back through it multiplied by ``scale``."""
    if scale == 1.0 or not x.requires_grad:
        return x
    x = x.view_as(x)  # a new node, so the hook scales only what flows through this use
    x.register_hook(lambda grad: grad * scale)
    return x


class W2VResult(NamedTuple):
    """One W2V pass: total loss (float32 scalar), its logs, and the transformer outputs (B, T', D)."""

    loss: torch.Tensor
    logs: dict[str, float]
    context: torch.Tensor


def _check_encoder(encoder: nn.Module, name: str) -> None:
    needed = ("conv_features", "normalise", "contextualise", "output_length", "local_dim")
    missing = [a for a in needed if not hasattr(encoder, a)]
    if missing:
        raise TypeError(f"objective {name!r} needs a wav2vec2 encoder; {type(encoder).__name__} lacks {missing}")


@register("w2v")
class W2V(Objective):
    """wav2vec 2.0 masked prediction of quantised local features (see the module docstring).

    Parameters
    ----------
    encoder
        The :class:`~ecgstudy.models.wav2vec2.Wav2Vec2` to train (inspected for sizes, not owned).
    options
        :class:`W2VOptions`.
    segment_len
        Samples per segment (``segment_s`` x fs).
    augment
        Augmentation and RLM strengths, applied to each segment.
    """

    archs = ("wav2vec2",)
    options_type = W2VOptions

    def __init__(self, encoder: nn.Module, options: W2VOptions, segment_len: int, augment: AugmentConfig):
        super().__init__()
        _check_encoder(encoder, self.name or "w2v")
        options.validate()
        tokens = encoder.output_length(segment_len)
        if tokens < 3:
            raise ValueError(
                f"segments of {segment_len} samples give {tokens} encoder time steps; W2V needs at least 3 "
                f"(raise segment_s or use an encoder with less downsampling than {encoder.downsampling}x)"
            )
        self.options = options
        self.segment_len = segment_len
        self.augment = augment
        self.quantiser = GumbelQuantiser(
            encoder.local_dim, options.latent_groups, options.latent_vars, options.final_dim
        )
        self.project_target = nn.Linear(options.final_dim, options.final_dim)  # quantised -> compared space
        self.project_output = nn.Linear(encoder.embed_dim, options.final_dim)  # transformer output -> compared space
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # training batches seen (Gumbel annealing)

    @classmethod
    def from_config(cls, options: W2VOptions, encoder: nn.Module, context: ObjectiveContext) -> W2V:
        segment_len = round(options.segment_s * context.fs)
        if segment_len > context.n_samples:
            raise ValueError(
                f"w2v segment_s {options.segment_s} s = {segment_len} samples exceeds records of {context.n_samples}"
            )
        return cls(encoder, options, segment_len, context.augment)

    @property
    def gumbel_temperature(self) -> float:
        """Current Gumbel-softmax temperature (annealed with :attr:`step`)."""
        o = self.options
        return max(o.gumbel_temp_start * o.gumbel_temp_decay ** int(self.step), o.gumbel_temp_end)

    def w2v_loss(
        self, encoder: nn.Module, x: torch.Tensor, lead_mask: torch.Tensor, generator: torch.Generator
    ) -> W2VResult:
        """W2V loss of segments ``x`` (B, n_leads, L) with lead mask (B, n_leads) (already augmented).

        Returns
        -------
        :class:`W2VResult`: loss = contrastive + diversity_weight x diversity + feature_pen_weight x penalty.
        """
        o = self.options
        raw = _scale_grad(encoder.conv_features(x, lead_mask), o.feature_grad_mult)  # (B, T', C)
        feature_pen = raw.float().pow(2).mean()
        local = encoder.normalise(raw)  # (B, T', C)
        batch, steps, _ = local.shape
        time_mask = span_mask(batch, steps, o.mask_prob, o.mask_length, o.min_spans, generator).to(x.device)
        n_masked = int(time_mask[0].sum())
        if n_masked < 2:
            raise ValueError(f"only {n_masked} masked step(s) of {steps}: W2V needs 2 to draw distractors")
        context = encoder.contextualise(local, time_mask)  # (B, T', D)

        targets_in = F.dropout(local, o.dropout_features, self.training)[time_mask]  # (B * M, C)
        temperature = self.gumbel_temperature
        quantised, codes, code_ppl, prob_ppl = self.quantiser(
            targets_in, temperature, generator if self.training else None
        )
        targets = self.project_target(quantised).view(batch, n_masked, -1)  # (B, M, F)
        codes = codes.view(batch, n_masked, -1)  # (B, M, G)
        outputs = self.project_output(context[time_mask]).view(batch, n_masked, -1)  # (B, M, F)

        # distractors: K other masked steps of the same segment per masked step, with replacement
        k = o.num_negatives
        idx = torch.randint(0, n_masked - 1, (batch, n_masked, k), generator=generator)
        idx = idx + (idx >= torch.arange(n_masked)[None, :, None]).long()  # skip the step itself
        flat = (idx + (torch.arange(batch) * n_masked)[:, None, None]).to(x.device).view(-1)
        negatives = targets.reshape(batch * n_masked, -1)[flat].view(batch, n_masked, k, -1)  # (B, M, K, F)
        negative_codes = codes.reshape(batch * n_masked, -1)[flat].view(batch, n_masked, k, -1)  # (B, M, K, G)
        same_code = (negative_codes == codes[:, :, None]).all(-1)  # (B, M, K): a distractor equal to the target

        candidates = torch.cat([targets[:, :, None], negatives], dim=2).float()  # (B, M, 1 + K, F)
        logits = F.cosine_similarity(outputs.float()[:, :, None], candidates, dim=-1) / o.logit_temp  # (B, M, 1 + K)
        logits = torch.cat([logits[..., :1], logits[..., 1:].masked_fill(same_code, float("-inf"))], dim=-1)
        logits = logits.view(-1, k + 1)
        contrastive = F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))
        diversity = (self.quantiser.n_codes - prob_ppl) / self.quantiser.n_codes
        loss = contrastive + o.diversity_weight * diversity + o.feature_pen_weight * feature_pen

        with torch.no_grad():
            # correct: the target scores highest, not counting rows where every candidate ties
            best, worst = logits.argmax(-1) == 0, logits.argmin(-1) == 0
            top1 = (best & ~worst).float().mean()
        if self.training:
            self.step += 1
        logs = {
            "top1": float(top1),
            "code_perplexity": float(code_ppl),
            "prob_perplexity": float(prob_ppl.detach()),
            "loss_contrastive": float(contrastive.detach()),
            "loss_diversity": float(diversity.detach()),
            "feature_pen": float(feature_pen.detach()),
            "gumbel_temp": temperature,
            "masked_frac": n_masked / steps,
        }
        return W2VResult(loss, logs, context)

    def forward(
        self, encoder: nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        x, mask = batch["x"], batch["lead_mask"].bool()
        segment = random_crop(x, self.segment_len, generator)  # (B, n_leads, L)
        segment, mask = augment(segment, mask, self.augment, generator)
        result = self.w2v_loss(encoder, segment, mask, generator)
        return result.loss, result.logs


@register("hybrid")
class Hybrid(W2V):
    """ECG-FM's W2V + CMSC + RLM on pairs of adjacent segments (see the module docstring).

    Parameters
    ----------
    encoder, segment_len, augment
        As :class:`W2V` (``segment_len`` is each of the two segments).
    options
        :class:`HybridOptions`.
    """

    archs = ("wav2vec2",)
    options_type = HybridOptions

    def __init__(self, encoder: nn.Module, options: HybridOptions, segment_len: int, augment: AugmentConfig):
        options.validate()
        super().__init__(encoder, options.w2v, segment_len, augment)
        self.hybrid = options

    @classmethod
    def from_config(cls, options: HybridOptions, encoder: nn.Module, context: ObjectiveContext) -> Hybrid:
        segment_len = round(options.w2v.segment_s * context.fs)
        if 2 * segment_len > context.n_samples:
            raise ValueError(
                f"hybrid w2v.segment_s {options.w2v.segment_s} s: two adjacent segments of {segment_len} samples "
                f"do not fit records of {context.n_samples}"
            )
        return cls(encoder, options, segment_len, context.augment)

    def forward(
        self, encoder: nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        x, mask = batch["x"], batch["lead_mask"].bool()
        n = len(x)
        seg_a, seg_b = adjacent_segments(x, mask, self.segment_len, generator)
        seg_a, mask_a = augment(seg_a, mask, self.augment, generator)
        seg_b, mask_b = augment(seg_b, mask, self.augment, generator)
        result = self.w2v_loss(encoder, torch.cat([seg_a, seg_b]), torch.cat([mask_a, mask_b]), generator)
        pooled = result.context.float().mean(dim=1)  # (2B, D): masked-forward outputs averaged over time
        cmsc, cmsc_top1 = info_nce(pooled[:n], pooled[n:], self.hybrid.cmsc_temperature)
        loss = self.hybrid.w2v_weight * result.loss + self.hybrid.cmsc_weight * cmsc
        logs = {**result.logs, "loss_w2v": float(result.loss.detach()), "loss_cmsc": float(cmsc.detach()),
                "cmsc_top1": float(cmsc_top1)}
        return loss, logs
