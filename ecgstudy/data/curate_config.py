"""The ``curate`` section of params.yaml: harmonisation, quality checks, splits and parallelism.

Its own module so that both the curation driver (:mod:`ecgstudy.data.curation`) and the per-record
pipeline (:mod:`ecgstudy.data.pipeline`) can read it without importing each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from ecgstudy.data import preprocess
from ecgstudy.data.quality import QCConfig
from ecgstudy.data.rare_sets import RareSetsConfig


@dataclass(frozen=True)
class CurateConfig:
    """params.yaml ``curate`` section: harmonisation, quality checks, splits, parallelism.

    Defaults are the study's default profile (the PTB-XL benchmark's 100 Hz, 10 s).
    """

    preset: str | None = None  # named harmonisation preset (preprocess.PRESETS: ptbxl_benchmark, ecgfounder, ecg_fm)
    fs: int = 100  # store sampling rate (Hz); PTB-XL benchmark rate
    duration_s: float = 10.0  # store record length (s); PTB-XL records are 10 s
    length_policy: Literal["center_crop_or_pad", "start_crop_or_pad", "windows"] = "center_crop_or_pad"  # longer/shorter records; windows: a long record becomes several rows (same record and patient ids), for pretraining pools
    lead_aliases: dict[str, str] = field(default_factory=dict)  # declared lead-name aliases, e.g. {MLII: II, ML2: II} (modified lead II); undeclared non-12-lead names are dropped
    bandpass: tuple[float, float] | None = None  # [low, high] Hz zero-phase Butterworth; null = none (benchmark)
    notch: float | None = None  # powerline notch (Hz); null = none
    baseline_median_s: float | None = None  # running-median baseline removal window (s); null = none
    normalise: Literal["dataset_per_lead_zscore", "dataset_zscore", "per_lead_zscore", "record_zscore", "none"] = "dataset_per_lead_zscore"  # applied at load time; dataset_*: mean/std fitted on the pretraining corpus's train split (keeps voltage)
    resolution: Literal["auto", "records100", "records500"] = "auto"  # PTB-XL folder; auto: records100 if fs <= 100
    external_sites: tuple[str, ...] | None = None  # sites of split "external"; null: as the data declares (simulator)
    use_official_folds: bool = True  # PTB-XL strat_fold: 1-8 train, 9 val, 10 test
    val_fraction: float = 0.1  # of patients, for sources without folds
    test_fraction: float = 0.1  # of patients, for sources without folds
    unknown_codes: Literal["exclude", "error"] = "exclude"  # a label outside the vocabulary: drop record or stop
    qc: QCConfig = field(default_factory=QCConfig)  # quality-check thresholds
    n_workers: int = 0  # reader processes; 0 = one per CPU core, 1 = in-process (output identical)
    chunk_size: int = 64  # records per work unit (bounds memory: ~2 chunks per worker in flight)
    rare_sets: RareSetsConfig = field(default_factory=RareSetsConfig)  # case-control sets of rare codes drawn from the main store (real datasets; the simulator writes its own)

    def validate(self) -> None:
        if self.preset is not None and self.preset not in preprocess.PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; valid: {sorted(preprocess.PRESETS)}")
        if self.preset is not None:
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            for key, value in preprocess.PRESETS[self.preset].items():
                mine = getattr(self, key)
                if mine != defaults[key] and mine != value:
                    raise ValueError(f"{key}={mine!r} conflicts with preset {self.preset!r} ({key}={value!r})")
        if self.fs <= 0 or self.duration_s <= 0:
            raise ValueError("fs and duration_s must be positive")
        if self.bandpass is not None and not 0 < self.bandpass[0] < self.bandpass[1]:
            raise ValueError(f"bandpass must be [low, high] with 0 < low < high, got {list(self.bandpass)}")
        if self.notch is not None and self.notch <= 0:
            raise ValueError("notch must be a positive frequency")
        if self.val_fraction < 0 or self.test_fraction < 0 or self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction and test_fraction must be >= 0 with a sum < 1")
        if self.n_workers < 0 or self.chunk_size < 1:
            raise ValueError("n_workers must be >= 0 and chunk_size >= 1")
        preprocess.check_aliases(self.lead_aliases)
        self.qc.validate()
        self.rare_sets.validate()

    def resolved(self) -> CurateConfig:
        """This config with its preset's values filled in (no preset: unchanged)."""
        if self.preset is None:
            return self
        return dataclasses.replace(self, **preprocess.PRESETS[self.preset])

    @property
    def n_samples(self) -> int:
        """Samples per stored record."""
        return int(round(self.fs * self.duration_s))

    def preprocessing(self) -> dict[str, Any]:
        """The harmonisation spec stored in meta.json (and in checkpoints)."""
        cfg = self.resolved()
        return {
            "preset": cfg.preset,
            "fs": cfg.fs,
            "duration_s": cfg.duration_s,
            "n_samples": cfg.n_samples,
            "length_policy": cfg.length_policy,
            "bandpass": list(cfg.bandpass) if cfg.bandpass else None,
            "notch": cfg.notch,
            "notch_q": preprocess.NOTCH_Q if cfg.notch else None,
            "bandpass_order": preprocess.BANDPASS_ORDER if cfg.bandpass else None,
            "baseline_median_s": cfg.baseline_median_s,
            "resampling": "polyphase (scipy.signal.resample_poly)",
            "normalise": cfg.normalise,
            "units": "mV",
            "leads": list(preprocess.STANDARD_LEADS),
        }
