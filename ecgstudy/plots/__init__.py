"""Figures of the study, one producer per figure, grouped by topic.

- :mod:`ecgstudy.plots.ecg`: 12-lead ECG drawings (per-condition gallery, saliency overlays)
- :mod:`ecgstudy.plots.training`: loss curves, label-efficiency curves, transfer comparisons
- :mod:`ecgstudy.plots.latent`: UMAP scatter plots
- :mod:`ecgstudy.plots.saliency`: localisation scores by method, attribution share per lead

Every function takes data and a path, draws with the non-interactive ``agg`` backend and returns the path.
"""
