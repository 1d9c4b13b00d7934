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
# # Rare-disease transfer: foundation vs scratch with a handful of cases
#
# The UCSF study fine-tuned a pretrained CNN on three rare diagnoses with little data and compared it with
# the same network trained from scratch. Here each simulated rare condition (outside the pretraining
# vocabulary) has a small case-control set; a patient-disjoint test part is held out, and training sets of
# a few cases (with their controls) are drawn repeatedly; repeat k of every strategy uses the same drawn
# set and seed (with all cases, the sets coincide and repeats differ by seed only: `draws_differ`). Full
# fine-tunes, foundation and scratch alike, train for a fixed number of steps (no validation data exists
# at this size, so no model selection); scratch starts from the encoder's random-init twin. The probe's
# weight decay is chosen by cross-validation over the patients of the first drawn set. This stage reports
# the mean and spread of the test AUROC over repeats and saves every run's scores; the evaluate stage adds the bootstrap intervals over test
# records and the paired foundation - scratch differences, and draws the comparison figure.
#
# With a real dataset the sets are statements with few positives of that dataset (`curate.rare_sets`, e.g.
# PTB-XL's WPW), drawn by the curate stage. As in the UCSF study, pretraining and rare-disease ECGs then
# come from one source: a self-supervised encoder has seen the train-split records' signals (never their
# labels); the metrics flag a supervised pretraining whose labels cover a condition. When no set was
# configured, the stage writes empty tables and metrics that say so.

# %% tags=["parameters"]
params: dict = {}  # stage sections of params.yaml injected by the runner (python -m ecgstudy.run_notebook transfer); empty: read params.yaml

# %%
from ecgstudy import config
from ecgstudy.stages import transfer
from ecgstudy.stages.outputs import without_timings

cfg = config.stage_config("transfer", params)
cfg.transfer

# %% [markdown]
# ## Train and test every condition, training-set size and strategy

# %%
result = transfer.run(cfg)
result.sets

# %% [markdown]
# ## Mean test AUROC over repeats, and the spread between repeats

# %%
without_timings(result.results)  # wall-clock columns: reports/timings/transfer.json

# %%
result.metrics

# %% [markdown]
# ## Saved models: out-of-fold thresholds, measured on the test part
#
# Repeat 0's model of every condition and strategy at the largest training size is saved under
# `models/transfer/` with a model card, for `ecgstudy predict`. With no validation split, each threshold is
# chosen on out-of-fold probabilities of the model's own training records (patient folds); here is what it
# gives on the held-out test part (Wilson and Hanley-McNeil intervals: one model, one small test part).

# %%
without_timings(result.decisions)
