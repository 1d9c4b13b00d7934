"""wav2vec 2.0-style ECG transformer (the encoder of ECG-FM, built on fairseq-signals).

Layout, input of shape (B, n_leads, T) at fs Hz, absent leads zeroed first (as :mod:`~ecgstudy.models.net1d`):

- feature encoder: ``len(conv_layers)`` blocks of conv (channels, kernel, stride; no padding) -> GELU; the
  first block has a per-channel group norm (wav2vec 2.0's "default" extractor), giving local features of
  shape (B, T', C) with T' = :meth:`Wav2Vec2.output_length` (T) (the trailing T mod :attr:`downsampling`
  samples are dropped, as in ECG-FM) and C = ``conv_layers[-1][0]``
- layer norm of the local features (the quantiser's input in W2V pretraining), linear projection to the
  model width D, dropout ``dropout_input``; masked time steps are replaced by a learned mask embedding
- relative positional encoding: a grouped, weight-normalised convolution over time (kernel ``conv_pos``
  tokens, ``conv_pos_groups`` groups, 'same' padding) -> GELU, added to its input
- transformer encoder, post-LN as wav2vec 2.0 base and ECG-FM (``layer_norm_first=False``: a layer norm
  on the transformer input, and each layer normalises after its residual sums); ``True`` gives pre-LN
  layers with a final layer norm (wav2vec 2.0 large)
- ``forward`` returns features (B, D, T'); ``embed`` averages them over time to (B, D)

Presets (parameter counts do not depend on the input length; see :data:`PRESETS`). tiny .. medium have 8x
downsampling for 100 Hz inputs (one token per 80 ms; 4 s = 50 tokens); base is ECG-FM's published encoder,
16x downsampling at 500 Hz (one token per 32 ms; 5 s = 156 tokens):

========  ==================  =====  ======  =====  =====  ==============  ===========
preset    conv layers         width  layers  heads  FFN    pos conv / grp  parameters
========  ==================  =====  ======  =====  =====  ==============  ===========
tiny      3 x (64, k2, s2)    128    4       4      512    32 / 16         ~0.85 M
small     3 x (128, k2, s2)   256    4       4      1024   64 / 16         ~3.5 M
medium    3 x (256, k2, s2)   512    8       8      2048   128 / 16        ~27.7 M
base      4 x (256, k2, s2)   768    12      12     3072   128 / 16        ~90.4 M (ECG-FM: ~91 M)
========  ==================  =====  ======  =====  =====  ==============  ===========

The W2V pretraining heads (quantiser and two projections: 0.51 M at ECG-FM's sizes, giving 90.9 M in all)
live in the objective, not in the encoder or its checkpoints.

The W2V objective (:mod:`ecgstudy.objectives.wav2vec`) uses the pieces separately: :meth:`conv_features`
(raw feature-encoder output, for the feature penalty), :meth:`normalise` (-> the quantiser's input) and
:meth:`contextualise` (projection, time masking, positional encoding, transformer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ecgstudy.models import presets


@dataclass(frozen=True)
class Wav2Vec2Spec:
    """Architecture of a :class:`Wav2Vec2` encoder (the ECG-FM value of each field in the comment)."""

    conv_layers: tuple[tuple[int, int, int], ...]  # feature encoder (channels, kernel, stride) x layers (4 x (256, 2, 2))
    width: int  # transformer model width D (768)
    layers: int  # transformer layers (12)
    heads: int  # attention heads (12)
    ffn: int  # feed-forward hidden units (3072)
    conv_pos: int = 128  # positional convolution kernel, in tokens (128)
    conv_pos_groups: int = 16  # positional convolution groups (16)
    layer_norm_first: bool = False  # False: post-LN, as wav2vec 2.0 base and ECG-FM; True: pre-LN + final LN
    dropout: float = 0.1  # dropout on the transformer input and on each residual branch (0.1)
    attention_dropout: float = 0.1  # dropout on attention weights (0.1)
    activation_dropout: float = 0.0  # dropout after the feed-forward GELU (0.0)
    dropout_input: float = 0.1  # dropout on the projected local features, before masking (0.1 in pretraining)
    conv_bias: bool = False  # biases in the feature-encoder convolutions (False)

    def validate(self) -> None:
        if not self.conv_layers:
            raise ValueError("conv_layers must list at least one (channels, kernel, stride) layer")
        for i, layer in enumerate(self.conv_layers):
            if len(layer) != 3 or min(layer) < 1:
                raise ValueError(f"conv_layers[{i}] = {layer} must be three positive ints (channels, kernel, stride)")
        if min(self.width, self.layers, self.heads, self.ffn, self.conv_pos, self.conv_pos_groups) < 1:
            raise ValueError("width, layers, heads, ffn, conv_pos and conv_pos_groups must be positive")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.width % self.conv_pos_groups:
            raise ValueError(f"width {self.width} is not divisible by conv_pos_groups {self.conv_pos_groups}")
        for name in ("dropout", "attention_dropout", "activation_dropout", "dropout_input"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


#: Named sizes; ``base`` is ECG-FM's published configuration (fairseq-signals ``wav2vec2`` defaults).
PRESETS: dict[str, Wav2Vec2Spec] = {
    "tiny": Wav2Vec2Spec(conv_layers=((64, 2, 2),) * 3, width=128, layers=4, heads=4, ffn=512, conv_pos=32),
    "small": Wav2Vec2Spec(conv_layers=((128, 2, 2),) * 3, width=256, layers=4, heads=4, ffn=1024, conv_pos=64),
    "medium": Wav2Vec2Spec(conv_layers=((256, 2, 2),) * 3, width=512, layers=8, heads=8, ffn=2048, conv_pos=128),
    "base": Wav2Vec2Spec(conv_layers=((256, 2, 2),) * 4, width=768, layers=12, heads=12, ffn=3072, conv_pos=128),
}


class _Fp32LayerNorm(nn.LayerNorm):
    """Layer norm computed in float32 (also under bf16 autocast), returned in the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            out = F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps)
        return out.to(x.dtype)


class _Fp32GroupNorm(nn.GroupNorm):
    """Group norm computed in float32 (also under bf16 autocast), returned in the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            out = F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps)
        return out.to(x.dtype)


class _FeatureEncoder(nn.Module):
    """Strided convolutions: (B, n_leads, T) -> (B, C, T'); group norm in the first block only."""

    def __init__(self, n_leads: int, layers: tuple[tuple[int, int, int], ...], bias: bool):
        super().__init__()
        blocks: list[nn.Module] = []
        c_in = n_leads
        for i, (c_out, kernel, stride) in enumerate(layers):
            conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, bias=bias)
            nn.init.kaiming_normal_(conv.weight)
            norm = _Fp32GroupNorm(c_out, c_out) if i == 0 else nn.Identity()  # per-channel norm over time
            blocks.append(nn.Sequential(conv, norm, nn.GELU()))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class _PositionalConv(nn.Module):
    """Relative positional encoding: (B, T', D) -> (B, T', D), grouped 'same' conv over time then GELU."""

    def __init__(self, width: int, kernel: int, groups: int):
        super().__init__()
        conv = nn.Conv1d(width, width, kernel, padding=kernel // 2, groups=groups)
        nn.init.normal_(conv.weight, mean=0.0, std=math.sqrt(4.0 / (kernel * width)))
        nn.init.zeros_(conv.bias)
        # weight norm with one gain per kernel position (norm over channels), as wav2vec 2.0
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        length = h.shape[1]
        out = self.conv(h.transpose(1, 2))[..., :length]  # an even kernel gives one extra step: drop it
        return F.gelu(out).transpose(1, 2)


class _TransformerLayer(nn.Module):
    """Self-attention + feed-forward block on (B, T', D), post-LN or pre-LN."""

    def __init__(self, spec: Wav2Vec2Spec):
        super().__init__()
        d = spec.width
        self.heads = spec.heads
        self.norm_first = spec.layer_norm_first
        self.attention_dropout = spec.attention_dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.attn_norm = _Fp32LayerNorm(d)
        self.fc1 = nn.Linear(d, spec.ffn)
        self.fc2 = nn.Linear(spec.ffn, d)
        self.ffn_norm = _Fp32LayerNorm(d)
        self.drop = nn.Dropout(spec.dropout)
        self.drop_act = nn.Dropout(spec.activation_dropout)

    def _attend(self, h: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        q, k, v = self.qkv(h).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T', d/H)
        p = self.attention_dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, H, T', d/H)
        return self.out(a.transpose(1, 2).reshape(b, t, d))

    def _feed_forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop_act(F.gelu(self.fc1(h))))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            h = h + self.drop(self._attend(self.attn_norm(h)))
            return h + self.drop(self._feed_forward(self.ffn_norm(h)))
        h = self.attn_norm(h + self.drop(self._attend(h)))
        return self.ffn_norm(h + self.drop(self._feed_forward(h)))


def _bert_init(module: nn.Module) -> None:
    """Transformer initialisation of wav2vec 2.0 (BERT's): linear weights N(0, 0.02), zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Wav2Vec2(nn.Module):
    """wav2vec 2.0-style transformer encoder for ECGs with any subset of leads.

    Parameters
    ----------
    spec
        Architecture (see :class:`Wav2Vec2Spec` and :data:`PRESETS`).
    n_leads
        Input channels (12 for the standard leads I, II, III, aVR, aVL, aVF, V1-V6).
    preset, overrides
        Recorded in :attr:`spec_dict` so a checkpoint can rebuild the model.
    """

    arch = "wav2vec2"

    def __init__(self, spec: Wav2Vec2Spec, n_leads: int = 12, preset: str = "custom", overrides: dict | None = None):
        super().__init__()
        spec.validate()
        self.spec = spec
        self.n_leads = n_leads
        self.preset = preset
        self.overrides = dict(overrides or {})
        self.embed_dim = spec.width
        self.local_dim = spec.conv_layers[-1][0]  # C: channels of the local features (quantiser input)
        self.feature_encoder = _FeatureEncoder(n_leads, spec.conv_layers, spec.conv_bias)
        self.feature_norm = _Fp32LayerNorm(self.local_dim)
        self.project = nn.Linear(self.local_dim, spec.width)
        self.dropout_input = nn.Dropout(spec.dropout_input)
        self.mask_embedding = nn.Parameter(torch.empty(spec.width).uniform_())
        self.pos_conv = _PositionalConv(spec.width, spec.conv_pos, spec.conv_pos_groups)
        # post-LN: normalises the transformer input; pre-LN: the transformer output
        self.norm = _Fp32LayerNorm(spec.width)
        self.dropout = nn.Dropout(spec.dropout)
        self.layers = nn.ModuleList(_TransformerLayer(spec) for _ in range(spec.layers))
        self.layers.apply(_bert_init)

    @property
    def spec_dict(self) -> dict[str, Any]:
        """Plain-python description that :func:`ecgstudy.models.build_encoder` rebuilds from."""
        return {"arch": self.arch, "preset": self.preset, "n_leads": self.n_leads, "overrides": presets.plain_overrides(self.overrides)}

    @property
    def downsampling(self) -> int:
        """Input samples per output time step (product of the feature encoder's strides)."""
        return math.prod(stride for _, _, stride in self.spec.conv_layers)

    def output_length(self, n_samples: int) -> int:
        """Time steps T' of the features of an input of ``n_samples`` samples (0 if too short)."""
        length = n_samples
        for _, kernel, stride in self.spec.conv_layers:
            length = (length - kernel) // stride + 1 if length >= kernel else 0
        return max(length, 0)

    def conv_features(self, x: torch.Tensor, lead_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Raw feature-encoder output.

        Parameters
        ----------
        x
            Signals of shape (B, n_leads, T) at fs Hz, normalised as the store's preprocessing spec says.
        lead_mask
            Bool (B, n_leads), True where the lead is present; absent leads are zeroed first.

        Returns
        -------
        Local features (B, T', C) before normalisation, T' = :meth:`output_length` (T), C = :attr:`local_dim`.
        """
        if x.ndim != 3 or x.shape[1] != self.n_leads:
            raise ValueError(f"Wav2Vec2 expects input of shape (B, {self.n_leads}, T), got {tuple(x.shape)}")
        if self.output_length(x.shape[-1]) < 1:
            raise ValueError(
                f"input of {x.shape[-1]} samples is too short for the feature encoder {list(self.spec.conv_layers)}"
            )
        if lead_mask is not None:
            if lead_mask.shape != x.shape[:2]:
                raise ValueError(f"lead_mask shape {tuple(lead_mask.shape)} does not match input {tuple(x.shape[:2])}")
            x = x * lead_mask.unsqueeze(-1).to(x.dtype)
        return self.feature_encoder(x).transpose(1, 2)  # (B, T', C)

    def normalise(self, features: torch.Tensor) -> torch.Tensor:
        """Layer norm of raw local features (B, T', C) -> (B, T', C): the quantiser's input."""
        return self.feature_norm(features)

    def local_features(self, x: torch.Tensor, lead_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised local features (B, T', C) of signals (B, n_leads, T) (see :meth:`conv_features`)."""
        return self.normalise(self.conv_features(x, lead_mask))

    def contextualise(self, features: torch.Tensor, time_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Transformer outputs of normalised local features.

        Parameters
        ----------
        features
            (B, T', C) from :meth:`local_features`.
        time_mask
            Optional bool (B, T'): True where the time step is replaced by the learned mask embedding
            (after the projection, before the positional encoding), as in W2V pretraining.

        Returns
        -------
        Contextual features (B, T', D).
        """
        if features.ndim != 3 or features.shape[-1] != self.local_dim:
            raise ValueError(f"contextualise expects features (B, T', {self.local_dim}), got {tuple(features.shape)}")
        h = self.dropout_input(self.project(features))  # (B, T', D)
        if time_mask is not None:
            if time_mask.shape != h.shape[:2] or time_mask.dtype != torch.bool:
                raise ValueError(
                    f"time_mask must be bool {tuple(h.shape[:2])}, got {time_mask.dtype} {tuple(time_mask.shape)}"
                )
            h = torch.where(time_mask.unsqueeze(-1), self.mask_embedding.to(h.dtype), h)
        h = h + self.pos_conv(h)
        if not self.spec.layer_norm_first:
            h = self.norm(h)
        h = self.dropout(h)
        for layer in self.layers:
            h = layer(h)
        if self.spec.layer_norm_first:
            h = self.norm(h)
        return h

    def forward(self, x: torch.Tensor, lead_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Features of an ECG batch.

        Parameters
        ----------
        x
            Signals of shape (B, n_leads, T) at fs Hz (presets tiny .. medium: 100 Hz; base: 500 Hz).
        lead_mask
            Bool (B, n_leads), True where the lead is present; absent leads are zeroed before the convolutions.

        Returns
        -------
        Features of shape (B, embed_dim, T'), T' = :meth:`output_length` (T) (about T / downsampling).
        """
        return self.contextualise(self.local_features(x, lead_mask)).transpose(1, 2)

    def embed(self, x: torch.Tensor, lead_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Time-averaged transformer outputs (B, embed_dim) for probes, UMAP and heads."""
        return self.forward(x, lead_mask).mean(dim=-1)


def build(preset: str, n_leads: int = 12, **overrides: Any) -> Wav2Vec2:
    """A :class:`Wav2Vec2` from a named preset, with optional field overrides (e.g. ``layers=2``)."""
    spec, clean = presets.resolve("wav2vec2", PRESETS, preset, overrides)
    return Wav2Vec2(spec, n_leads=n_leads, preset=preset, overrides=clean)
