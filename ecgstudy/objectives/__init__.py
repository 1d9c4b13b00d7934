"""Pretraining objectives, one registered class each, selectable by name in params.yaml.

- :mod:`~ecgstudy.objectives.augment`: ECG augmentations (crop, scale, baseline, noise, random lead masking)
- :mod:`~ecgstudy.objectives.base`: the objective interface and registry, and ``cmsc`` (CMSC + RLM)
- :mod:`~ecgstudy.objectives.supervised`: ``supervised`` multi-label BCE on a broad label task (ECGFounder)
- :mod:`~ecgstudy.objectives.masked`: ``mae`` masked reconstruction, any encoder (ST-MEM-style)
- :mod:`~ecgstudy.objectives.wav2vec`: ``w2v`` masked prediction of quantised features and ``hybrid``
  W2V + CMSC + RLM (ECG-FM), wav2vec2 transformer only

Importing this package registers every objective in :data:`OBJECTIVES`. An objective sits beside the
encoders (:mod:`ecgstudy.models`), never inside them: only the encoder is kept after pretraining.
How to add one: docs/architecture.md.
"""

from ecgstudy.objectives.base import OBJECTIVES, Objective, ObjectiveContext, build_objective, register
from ecgstudy.objectives import masked, supervised, wav2vec  # noqa: F401  (registration)

__all__ = ["OBJECTIVES", "Objective", "ObjectiveContext", "build_objective", "register"]
