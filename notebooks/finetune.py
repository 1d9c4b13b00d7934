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
# # Fine-tuning: does pretraining help when labels are few?
#
# Multi-label diagnosis on the main cohort, at several fractions of the training patients. Four
# strategies share one architecture: the pretrained encoder fine-tuned end to end, the same network
# trained from scratch (a strong baseline), a linear probe on the frozen pretrained encoder, and a linear
# probe on a frozen *random* encoder (the baseline every self-supervised claim must beat). Epochs are
# chosen on the validation split; the test split and the external site (a different device and
# population: domain shift) are scored once, with macro AUROC / AUPRC and bootstrap 95% intervals on
# resamples shared by all models, plus paired bootstrap differences.
#
# Inputs follow `finetune.train_crop_s` and `finetune.eval_window_s`: whole 10 s records by default, or
# the PTB-XL benchmark protocol (random 2.5 s training crops; validation and test records cut into 2.5 s
# windows every 1.25 s, each record scored by the maximum of its window probabilities). The metrics name
# the protocol used.

# %% tags=["parameters"]
params: dict = {}  # stage sections of params.yaml injected by the runner (python -m ecgstudy.run_notebook finetune); empty: read params.yaml

# %%
from IPython.display import Image

from ecgstudy import config, finetune
from ecgstudy.outputs import stage_outputs
from ecgstudy.paths import resolve
from ecgstudy.plots import training as training_plots

cfg = config.stage_config("finetune", params)
out = stage_outputs("finetune", models=True)
store_dir = resolve(cfg.data.curated) / cfg.finetune.store
cfg.finetune

# %% [markdown]
# ## Train every strategy at every label fraction

# %%
result = finetune.run_finetune(cfg.finetune, store_dir, resolve(cfg.finetune.encoder), out.models, seed=cfg.seed)
finetune.write_tables(result, out.tables, out.plots)
result.results

# %% [markdown]
# ## Label efficiency
# Macro AUROC against the share of training patients whose labels were used, with 95% bootstrap bands.

# %%
Image(filename=training_plots.label_efficiency(result.results, out.figure("label_efficiency")))

# %% [markdown]
# ## Paired differences
# Each pair of models is scored on the same bootstrap resamples; an interval excluding 0 is a difference
# the test set can resolve.

# %%
result.comparisons[result.comparisons["metric"] == "auroc"]

# %%
out.write_metrics(result.metrics)
