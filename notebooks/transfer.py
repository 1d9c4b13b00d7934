# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Rare-disease transfer: foundation vs scratch with a handful of cases
#
# The UCSF study fine-tuned a pretrained CNN on three rare diagnoses with little data and compared it with
# the same network trained from scratch. Here each simulated rare condition (outside the pretraining
# vocabulary) has a small case-control set; a patient-disjoint test part is held out, and training sets of
# a few cases (with their controls) are drawn repeatedly. Every run trains for a fixed number of steps (no
# validation data exists at this size, so no model selection); AUROC is the mean over repeats with a 95%
# bootstrap interval over test records.

# %% tags=["parameters"]
params: dict = {}  # stage sections of params.yaml injected by the runner (python -m ecgstudy.run_notebook transfer); empty: read params.yaml

# %%
from IPython.display import Image

from ecgstudy import config, transfer
from ecgstudy.outputs import stage_outputs
from ecgstudy.paths import resolve
from ecgstudy.plots import training as training_plots

cfg = config.stage_config("transfer", params)
out = stage_outputs("transfer")
store_dir = resolve(cfg.data.curated) / cfg.transfer.store
cfg.transfer

# %% [markdown]
# ## Train and test every condition, training-set size and strategy

# %%
result = transfer.run_transfer(cfg.transfer, store_dir, resolve(cfg.transfer.encoder), seed=cfg.seed)
transfer.write_tables(result, out.tables)
result.sets

# %%
result.results

# %% [markdown]
# ## Foundation vs scratch
# Test AUROC per condition against the number of training cases (error bars: 95% bootstrap intervals;
# dashed line: chance).

# %%
Image(filename=training_plots.transfer_comparison(result.results, out.figure("transfer")))

# %%
result.comparisons

# %%
out.write_metrics(result.metrics)
