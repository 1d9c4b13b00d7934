"""The ``pretrain`` section of params.yaml: runs (objective x encoder), objective options, optimiser, probe."""


from __future__ import annotations

from dataclasses import dataclass, field

from ecgstudy.data.labels import TASKS
from ecgstudy.models import ENCODERS
from ecgstudy.objectives.augment import AugmentConfig
from ecgstudy.objectives.masked import MAEOptions
from ecgstudy.objectives.base import OBJECTIVES, CMSCOptions
from ecgstudy.objectives.supervised import SupervisedOptions
from ecgstudy.objectives.wav2vec import HybridOptions, W2VOptions
from ecgstudy.engine.train import TrainConfig

SPLITS = ("train", "val", "test", "external")


@dataclass(frozen=True)
class PretrainRun:
    """One pretraining run: an objective on an encoder architecture and size."""

    name: str = "cmsc"  # run label: models/pretrain/<name>.pt, reports/plots/pretrain/<name>.csv
    objective: str = "cmsc"  # pretraining objective (ecgstudy.objectives.base.OBJECTIVES)
    arch: str = "net1d"  # encoder architecture (ecgstudy.models.ENCODERS)
    preset: str = "tiny"  # encoder size preset of that architecture
    epochs: int = 0  # passes over the pretraining records; 0 = optim.epochs (must stay 0 when pretrain.steps fixes compute)
    lr: float = 0.0  # peak learning rate; 0 = optim.lr

    def validate(self) -> None:
        if not self.name or "/" in self.name or self.name == "encoder" or self.name.endswith(".random_init"):
            raise ValueError(f"run name {self.name!r} must be a non-empty file stem other than 'encoder', not ending "
                             "in '.random_init' (the random-init twins' names)")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective {self.objective!r} unknown; objectives: {sorted(OBJECTIVES)}")
        if self.arch not in ENCODERS:
            raise ValueError(f"arch {self.arch!r} unknown; architectures: {sorted(ENCODERS)}")
        archs = OBJECTIVES[self.objective].archs
        if archs is not None and self.arch not in archs:
            raise ValueError(f"objective {self.objective!r} needs arch {list(archs)}, run {self.name!r} has {self.arch!r}")
        if self.epochs < 0 or self.lr < 0:
            raise ValueError("epochs and lr must be >= 0 (0 = the optim section's value)")


@dataclass(frozen=True)
class ObjectiveOptions:
    """Options of every objective (each run uses its objective's)."""

    cmsc: CMSCOptions = field(default_factory=CMSCOptions)  # contrastive multi-segment coding (+ RLM via augment)
    supervised: SupervisedOptions = field(default_factory=SupervisedOptions)  # multi-label BCE on a label task
    mae: MAEOptions = field(default_factory=MAEOptions)  # masked reconstruction of time patches
    w2v: W2VOptions = field(default_factory=W2VOptions)  # wav2vec 2.0 masked prediction, quantised targets
    hybrid: HybridOptions = field(default_factory=HybridOptions)  # ECG-FM's W2V + CMSC + RLM


@dataclass(frozen=True)
class ProbeConfig:
    """The comparison: a linear probe on each frozen encoder's embeddings vs the same architecture at random init."""

    store: str = "main"  # downstream store probed: heads train on its train split, scored on its val split
    task: str = "all"  # label task probed (ecgstudy.data.labels.TASKS)
    min_positives: int = 10  # labels with at least this many train positives
    optim: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=40, min_steps=300, batch_size=256, lr=0.01, warmup_frac=0.0, bf16=False, progress=False
        )
    )  # the head trains on train-split features for a fixed budget (~320 steps on ~2,000 records); scored on validation, never test
    repeats: int = 3  # probe repeats per encoder and twin (seed k = seed + k; same training records: they differ by seed only)
    weight_decay_grid: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0])  # probe weight decay searched for every encoder and twin alike, by inner CV on the training records (validation is the reported split)
    cv_folds: int = 3  # patient folds of that inner cross-validation

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"probe task {self.task!r} unknown; tasks: {list(TASKS)}")
        if self.min_positives < 1:
            raise ValueError("min_positives must be >= 1")
        if self.repeats < 1 or self.cv_folds < 2:
            raise ValueError(f"repeats must be >= 1 and cv_folds >= 2, got {self.repeats} and {self.cv_folds}")
        if not self.weight_decay_grid or any(w < 0 for w in self.weight_decay_grid):
            raise ValueError(f"weight_decay_grid {self.weight_decay_grid} must list values >= 0")


@dataclass(frozen=True)
class PretrainConfig:
    """params.yaml ``pretrain`` section."""

    store: str = "foundation"  # store folder under data.curated: the foundation corpus only (refused otherwise)
    runs: list[PretrainRun] = field(
        default_factory=lambda: [
            PretrainRun(name="cmsc", objective="cmsc", arch="net1d", preset="tiny"),
            PretrainRun(name="supervised", objective="supervised", arch="net1d", preset="tiny"),
            PretrainRun(name="mae", objective="mae", arch="net1d", preset="tiny"),
            PretrainRun(name="w2v", objective="w2v", arch="wav2vec2", preset="tiny"),
            PretrainRun(name="hybrid", objective="hybrid", arch="wav2vec2", preset="tiny"),
        ]
    )  # objectives x encoders compared at matched compute (pretrain.steps each); objective and encoder are confounded across the two architectures (comparison column same_encoder); w2v vs hybrid on the same wav2vec2 isolates what ECG-FM's CMSC + RLM terms add
    keep: str = "cmsc"  # run whose encoder becomes models/pretrain/encoder.pt (used downstream); chosen before results
    objectives: ObjectiveOptions = field(default_factory=ObjectiveOptions)  # per-objective options
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # augmentations + RLM shared by the objectives
    splits: list[str] = field(default_factory=lambda: ["train"])  # records pretrained on: train only (val selects models and scores the probe comparison; test and external are evaluated)
    steps: int = 150  # optimiser steps of EVERY run (matched compute: steps x optim.batch_size samples seen by each objective, ~2.7 passes over the default foundation train split); sized for the 40-min study on 2 cores; 0 = epochs decide
    optim: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=30, batch_size=128, lr=2e-3, warmup_frac=0.05, patience=0)
    )  # shared by the runs (a run may override epochs and lr)
    probe: ProbeConfig = field(default_factory=ProbeConfig)  # linear-probe comparison on the validation split
    recalibrate_bn: bool = True  # re-estimate batch-norm statistics on un-augmented train records at the end
    resume: bool = True  # keep a per-epoch training state under models/resume/pretrain and resume from it
    num_threads: int = 0  # torch CPU threads (0 = torch default); with workers > 1, the threads of each worker (0 = 1)
    workers: int = 2  # runs trained side by side in this many spawned one-thread processes on a CPU, largest encoder first (1, a GPU or torchrun: one after another in this process); at the same threads per run the numbers do not depend on it

    def validate(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        bad = [s for s in self.splits if s not in SPLITS]
        if bad or not self.splits:
            raise ValueError(f"splits {self.splits} must be a non-empty subset of {list(SPLITS)}")
        leaked = [s for s in self.splits if s in ("val", "test", "external")]
        if leaked:
            raise ValueError(f"pretraining on split(s) {leaked} would leak them into downstream model selection "
                             "(val: best epochs, tuning, the probe comparison) or evaluation (test, external); "
                             "pretrain on train only")
        if not self.runs:
            raise ValueError("runs must list at least one pretraining run")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.steps:
            own = [r.name for r in self.runs if r.epochs]
            if own:
                raise ValueError(f"run(s) {own} set epochs, but pretrain.steps = {self.steps} gives every run the same "
                                 "optimiser steps (matched compute); drop their epochs or set steps: 0")
        names = [r.name for r in self.runs]
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            raise ValueError(f"run names must be unique; repeated: {dups}")
        if self.keep not in names:
            raise ValueError(f"keep {self.keep!r} is not a run name; runs: {names}")

    def run(self, name: str) -> PretrainRun:
        """The run called ``name``."""
        for run in self.runs:
            if run.name == name:
                return run
        raise KeyError(f"no pretraining run {name!r}; runs: {[r.name for r in self.runs]}")

    def options(self, objective: str):
        """The options dataclass of ``objective``."""
        if not hasattr(self.objectives, objective):
            raise KeyError(f"no options section for objective {objective!r} under pretrain.objectives")
        return getattr(self.objectives, objective)
