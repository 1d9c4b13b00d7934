"""The ``saliency`` section of params.yaml (the inline comments below are params.yaml's comments)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Store splits whose records can be explained.
SPLITS = ("train", "val", "test", "external")


@dataclass(frozen=True)
class ClassifierChoice:
    """The fine-tuned classifier explained (a finetune output, one per strategy and label fraction).

    :func:`ecgstudy.stages.artifacts.check_links` checks the pair against the finetune section and
    :func:`ecgstudy.stages.artifacts.classifier_path` resolves it to ``models/finetune/<strategy>_<fraction>.pt``.
    """

    strategy: str = "pretrained"  # finetune strategy of the classifier explained
    fraction: float = 1.0  # its label fraction (one of finetune.fractions)

    def validate(self) -> None:
        if not self.strategy:
            raise ValueError("strategy must name a finetune strategy, got an empty string")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")


@dataclass(frozen=True)
class SaliencyConfig:
    """params.yaml section ``saliency``."""

    store: str = "main"  # store folder under data.curated (signature_masks.parquet: scored; none: described per lead)
    classifier: ClassifierChoice = field(default_factory=ClassifierChoice)  # fine-tuned classifier explained (finetune output)
    split: str = "test"  # store split whose records are explained (never seen in training)
    max_records: int = 48  # records explained: a seeded sample of those with ground-truth masks (IG cost)
    records_per_condition: int = 8  # without masks: records reported positive explained per condition (seeded sample)
    codes: tuple[str, ...] = ()  # conditions explained; empty = every classifier label that has masks (without masks: every label)
    max_mask_share: float = 0.5  # skip diffuse signatures (e.g. AF over the whole strip): nothing to localise
    n_steps: int = 32  # integrated-gradients path steps (the metrics report the completeness error they leave)
    batch_size: int = 256  # interpolated inputs per forward/backward pass (memory vs speed)
    smooth_s: float = 0.04  # moving-average window on |attribution| before scoring: one 1 mm square
    n_bootstrap: int = 1000  # cluster-bootstrap resamples of the explained pairs' patients (95% intervals, paired differences)
    n_examples: int = 4  # overlay figures drawn (one per condition where possible)
    validity_check: bool = True  # also run the synthetic known-region check (a few seconds)
    num_threads: int = 0  # torch CPU threads (0 = torch default)

    def validate(self) -> None:
        if self.n_steps < 1 or self.max_records < 1 or self.batch_size < 1 or self.records_per_condition < 1:
            raise ValueError("n_steps, max_records, records_per_condition and batch_size must be >= 1")
        if not 0.0 < self.max_mask_share <= 1.0:
            raise ValueError(f"max_mask_share must be in (0, 1], got {self.max_mask_share}")
        if self.smooth_s < 0:
            raise ValueError(f"smooth_s must be >= 0, got {self.smooth_s}")
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; valid: {', '.join(SPLITS)}")
