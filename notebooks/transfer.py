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
#
# With a real dataset the sets are statements with few positives of that dataset (`curate.rare_sets`, e.g.
# PTB-XL's WPW), drawn by the curate stage. As in the UCSF study, pretraining and rare-disease ECGs then
# come from one source: a self-supervised encoder has seen the train-split records' signals (never their
# labels); the metrics flag a supervised pretraining whose labels cover a condition. When no set was
# configured, the stage writes empty tables and metrics that say so.

# %% tags=["parameters"]
params: dict = {}  # stage sections of params.yaml injected by the runner (python -m ecgstudy.run_notebook transfer); empty: read params.yaml

# %%
from IPython.display import Image

from ecgstudy import config, transfer
from ecgstudy.outputs import stage_outputs
from ecgstudy.paths import resolve

cfg = config.stage_config("transfer", params)
out = stage_outputs("transfer")
store_dir = resolve(cfg.data.curated) / cfg.transfer.store
cfg.transfer

# %% [markdown]
# ## Train and test every condition, training-set size and strategy

# %%
result = transfer.run_transfer(cfg.transfer, store_dir, resolve(cfg.transfer.encoder), seed=cfg.seed,
                               require_store=cfg.data.source == "simulated")  # a real dataset's sets are optional
transfer.write_tables(result, out.tables)
result.sets

# %%
result.results

# %% [markdown]
# ## Foundation vs scratch
# Test AUROC per condition against the number of training cases (error bars: 95% bootstrap intervals;
# dashed line: chance). No set: no figure, and the reason instead.

# %%
figure = transfer.draw_comparison(result, out.figure("transfer"))
Image(filename=figure) if figure else result.metrics["reason"]

# %%
result.comparisons

# %%
out.write_metrics(result.metrics)
