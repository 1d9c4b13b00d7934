"""Pretraining stage: encoders learn from training-split records with the objectives under comparison.

- :mod:`ecgstudy.objectives.augment`: ECG augmentations (crop, scale, baseline, noise, random lead masking)
- :mod:`ecgstudy.objectives.base`: the objective interface, registry and ``cmsc`` (CMSC + RLM)
- :mod:`ecgstudy.objectives.supervised`: ``supervised`` multi-label BCE on a broad label task (ECGFounder)
- :mod:`ecgstudy.objectives.masked`: ``mae`` masked reconstruction, any encoder (ST-MEM-style)
- :mod:`ecgstudy.objectives.wav2vec`: ``w2v`` masked prediction of quantised features and ``hybrid``
  W2V + CMSC + RLM (ECG-FM), wav2vec2 transformer only
- :mod:`ecgstudy.stages.pretrain.config`: the ``pretrain`` section (runs, objective options, optimiser, probe)
- :mod:`ecgstudy.stages.pretrain.stage`: :func:`run_pretrain` (every run, then the comparison) and :func:`run`,
  the stage entry point
- :mod:`ecgstudy.stages.pretrain.compare`: linear-probe comparison of the pretrained encoders vs random init

The ``pretrain`` section of params.yaml lists ``runs`` (objective x encoder architecture x size); each run
is trained with the one engine (:func:`ecgstudy.engine.train.fit`) on ``splits`` (train by default, never test),
keeps the epoch with the lowest validation-split objective loss, and is saved as
``models/pretrain/<run>.pt``. The run named by ``keep`` is also written as ``models/pretrain/encoder.pt``,
the encoder every downstream stage uses. Which run to keep is a params choice made before seeing results.
"""

from ecgstudy.stages.pretrain.config import ObjectiveOptions, PretrainConfig, PretrainRun, ProbeConfig
from ecgstudy.stages.pretrain.stage import PretrainResult, RunResult, run, run_pretrain

__all__ = [
    "ObjectiveOptions",
    "PretrainConfig",
    "PretrainResult",
    "PretrainRun",
    "ProbeConfig",
    "RunResult",
    "run",
    "run_pretrain",
]
