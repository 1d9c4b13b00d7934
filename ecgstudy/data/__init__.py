"""The data layer: from raw recordings to the curated store every stage reads.

- :mod:`~ecgstudy.data.sources`: one reader per format (PTB-XL, PhysioNet/CinC, CODE-15%, MIMIC-IV-ECG, WFDB)
- :mod:`~ecgstudy.data.curation`: the curation driver (stream, harmonise, check, split, write the store);
  :mod:`~ecgstudy.data.curate_config` its settings, :mod:`~ecgstudy.data.pipeline` the per-record work
- :mod:`~ecgstudy.data.preprocess`, :mod:`~ecgstudy.data.quality`, :mod:`~ecgstudy.data.splits`: harmonisation,
  quality checks, patient-level splits
- :mod:`~ecgstudy.data.store` (read, serve to torch), :mod:`~ecgstudy.data.store_writer` (atomic writes)
- :mod:`~ecgstudy.data.labels`, :mod:`~ecgstudy.data.vocab_map`: the SCP-ECG vocabulary, tasks, SNOMED CT map
- :mod:`~ecgstudy.data.rare_sets`, :mod:`~ecgstudy.data.measure`, :mod:`~ecgstudy.data.describe`: case-control
  sets, independent interval measurement, store summaries
- :mod:`~ecgstudy.data.leads`: the one lead order

Imports nothing from the layers above (engine, stages, plots). See docs/architecture.md.
"""
