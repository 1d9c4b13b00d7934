"""params.yaml ``evaluate`` section: resampling per family of comparisons, label sets, the claim rule."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bootstrap:
    """Resampling and label-set settings of one family of comparisons."""

    n_boot: int = 1000  # resamples; each draws the patients (cluster bootstrap) and the training repeats with replacement
    ci: float = 0.95  # level of unadjusted intervals; Holm-adjusted intervals (family-wise 1 - alpha) are wider
    min_positives: int = 10  # fixed label set: labels with >= this many positives and negatives in every evaluated split

    def validate(self) -> None:
        if self.n_boot < 1 or not 0 < self.ci < 1:
            raise ValueError(f"n_boot must be >= 1 and ci in (0, 1), got n_boot={self.n_boot}, ci={self.ci}")
        if self.min_positives < 1:
            raise ValueError(f"min_positives must be >= 1, got {self.min_positives}")


@dataclass(frozen=True)
class EvaluateConfig:
    """params.yaml ``evaluate`` section."""

    pretrain: Bootstrap = field(default_factory=Bootstrap)  # probe comparisons (validation split): each run vs its random-init twin and vs each other run
    finetune: Bootstrap = field(default_factory=Bootstrap)  # strategies per fraction and evaluation split, every pair compared
    transfer: Bootstrap = field(default_factory=lambda: Bootstrap(min_positives=5))  # rare conditions (one label each, small test parts): foundation(-probe) vs scratch
    min_effect: float = 0.01  # smallest AUROC difference of interest: a claim whose adjusted interval lies below it is "not reproduced"

    def validate(self) -> None:
        if not 0 <= self.min_effect < 1:
            raise ValueError(f"min_effect must be in [0, 1), got {self.min_effect}")
