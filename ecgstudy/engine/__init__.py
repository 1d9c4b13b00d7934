"""The training and evaluation engine, shared by every stage that trains or scores a model.

- :mod:`~ecgstudy.engine.train`: ``fit`` (single process or DDP, exact resume), ``predict``, batch-norm
  recalibration; :mod:`~ecgstudy.engine.loop` its pieces (one epoch, validation, state), and
  :mod:`~ecgstudy.engine.state` and :mod:`~ecgstudy.engine.distributed` its helpers
- :mod:`~ecgstudy.engine.probes`: heads on encoders (full fine-tune, linear probe, embeddings)
- :mod:`~ecgstudy.engine.evaluate`: metrics, bootstrap intervals, sliding-window scoring
- :mod:`~ecgstudy.engine.scores`: the score files training stages save for the evaluate stage
- :mod:`~ecgstudy.engine.attribution`: integrated gradients and localisation scores

Imports the data layer and the models, never a stage. See docs/architecture.md.
"""
