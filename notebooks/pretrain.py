# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Pretraining: which objective teaches an encoder the most about ECGs?
#
# The seed papers pretrain in different ways: ECGFounder supervised on broad diagnoses, ECG-FM with a hybrid
# of wav2vec 2.0 masked prediction, CMSC and random lead masking, Song et al. compare generative (masked)
# with contrastive objectives. Each run below trains one objective on one encoder (Net1D, the RegNet-style
# CNN of ECGFounder, or the wav2vec 2.0-style transformer of ECG-FM) on the train split for the same
# number of optimiser steps (`pretrain.steps`: matched compute, the same samples seen by every objective);
# the validation split picks the epoch kept and scores the comparison; the test split is not touched.
# Objectives on different encoders differ in architecture too: the table's `same_encoder` column names
# the runs a run can be compared with free of that confound.
#
# The comparison is the baseline recent work says every claim must beat: a linear probe on each frozen
# encoder's embeddings against the same encoder at its random initialisation (the run's starting weights,
# batch-norm statistics re-estimated on the same records as the pretrained encoder's). Both probes get the
# same weight-decay search (cross-validation over training patients) and `probe.repeats` seeds.
# This stage trains the probes and saves their validation scores; the evaluate stage puts the paired
# bootstrap interval on each gain and draws the comparison figure.
# The run named by `keep` in params.yaml (chosen before seeing these results) is the encoder every
# downstream stage uses.

# %% tags=["parameters"]
params: dict = {}  # stage sections of params.yaml injected by the runner (python -m ecgstudy.run_notebook pretrain); empty: read params.yaml

# %%
import pandas as pd
from IPython.display import Image

from ecgstudy import config
from ecgstudy.stages import pretrain

cfg = config.stage_config("pretrain", params)
pd.DataFrame([vars(r) for r in cfg.pretrain.runs])

# %% [markdown]
# ## Pretrain every run
# One progress bar per run and epoch (samples/s). An interrupted run resumes from its last finished epoch
# when the stage is rerun with the same params.

# %%
result = pretrain.run(cfg)
pd.DataFrame({name: r.metrics for name, r in result.runs.items()}).T

# %% [markdown]
# ## Loss curves
# Training and validation objective loss per epoch, one panel per run (the objectives' losses are on
# different scales, so only their shapes compare). A falling validation curve says the objective is
# learnable on this cohort; whether what it learns is useful is the next table's question.

# %%
Image(filename=result.figures["loss"])

# %% [markdown]
# ## Linear probe: pretrained vs random init
# Macro AUROC on the validation split of a linear head on frozen embeddings, per run (mean over probe
# repeats, with their spread and the chosen weight decays), next to the run's random-init twin
# (intervals: evaluate stage).

# %%
result.comparison.round(3)

# %%
result.metrics
