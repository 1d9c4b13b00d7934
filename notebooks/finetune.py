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
# # Fine-tuning: does pretraining help when labels are few?
#
# Multi-label diagnosis on the main cohort, at several fractions of the training patients. Four
# strategies share one architecture: the pretrained encoder fine-tuned end to end, the same network
# trained from scratch (a strong baseline), a linear probe on the frozen pretrained encoder, and a linear
# probe on a frozen *random* encoder (the baseline every self-supervised claim must beat). Epochs are
# chosen on the validation split; the test split and the external site (a different device and
# population: domain shift) are scored once. This stage trains and saves every model's scores; the
# intervals, paired differences and the label-efficiency figure are the evaluate stage's, so changing a
# statistics setting never retrains a model.
#
# Inputs follow `finetune.train_crop_s` and `finetune.eval_window_s`: whole 10 s records by default, or
# the PTB-XL benchmark protocol (random 2.5 s training crops; validation and test records cut into 2.5 s
# windows every 1.25 s, each record scored by the maximum of its window probabilities). The metrics name
# the protocol used.

# %% tags=["parameters"]
params: dict = {}  # stage sections of params.yaml injected by the runner (python -m ecgstudy.run_notebook finetune); empty: read params.yaml

# %%
from ecgstudy import config
from ecgstudy.stages import finetune
from ecgstudy.stages.outputs import without_timings

cfg = config.stage_config("finetune", params)
cfg.finetune

# %% [markdown]
# ## Train every strategy at every label fraction, several times
# Each strategy x fraction is trained `finetune.repeats` times: repeat k draws its own label subsample and
# seed, the same for every strategy, so strategies compare repeat by repeat (at fraction 1 the repeats
# differ by seed only). One row per model and evaluation split: point macro AUROC / AUPRC over the split's
# evaluable labels (`n_labels`), the searched value it trained with, its best epoch on validation, how many
# epochs ran and whether the best epoch was the last (`stopped_at_last_epoch`: it may not have converged).
# Training times differ from run to run, so they are not shown here: `reports/timings/finetune.json` holds them.

# %%
result = finetune.run(cfg)
without_timings(result.results)

# %% [markdown]
# ## The same search for every arm
# On repeat 0 every full fine-tune tries each learning rate of `finetune.lr_grid` and every probe each
# weight decay of `finetune.weight_decay_grid`; the value with the best validation score (never a test
# score) trains the other repeats.

# %%
without_timings(result.tuning)

# %% [markdown]
# ## Training curves
# Validation macro AUROC per epoch of the full fine-tunes of repeat 0, one column per searched learning
# rate (the probes' heads train on cached features).

# %%
full = result.curves[(result.curves["repeat"] == 0) & result.curves["strategy"].isin(["pretrained", "scratch"])]
full.pivot_table(index="epoch", columns=["strategy", "fraction", "searched_lr"], values="val_auroc").round(3) if len(full) else full

# %%
result.metrics
