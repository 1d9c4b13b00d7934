"""Applying the study's models to anyone's ECGs: ``ecgstudy predict``, ``ecgstudy embed``, model cards.

- :mod:`~ecgstudy.apply.inputs`: one raw record -> the windows a checkpoint's model takes, with the
  checkpoint's own preprocessing (never the current params) and its evaluation protocol;
- :mod:`~ecgstudy.apply.stream`: records read and prepared in worker processes, windows batched through a model;
- :mod:`~ecgstudy.apply.predict`, :mod:`~ecgstudy.apply.embed`: a folder of records -> one row per record;
- :mod:`~ecgstudy.apply.decisions`: thresholds chosen on validation stored in a classifier checkpoint, and
  its test operating points and calibration;
- :mod:`~ecgstudy.apply.cards`: the model card written beside every checkpoint the study writes.

A layer between the engine and the stages: it imports ``data``, ``models`` and ``engine``; the training
stages call :mod:`~ecgstudy.apply.decisions` and :mod:`~ecgstudy.apply.cards` after saving a model.
"""
