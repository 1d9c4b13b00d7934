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
# # Pretraining: can an encoder learn ECG structure without labels?
#
# A small Net1D encoder (ECGFounder's RegNet-style 1-D CNN, tiny preset) is pretrained on the unlabelled
# records of the train split with CMSC + RLM (ECG-FM's contrastive objective): two adjacent segments of
# the same record must be recognised among the other records of the batch, after independent
# augmentation and random lead masking. The validation split picks the epoch kept; the test split is not
# touched. The loss curve shows whether the objective is learnable; the downstream stages (fine-tuning,
# rare-disease transfer, latent space) test whether what it learns is useful.

# %% tags=["parameters"]
params: dict = {}  # stage sections of params.yaml injected by the runner (python -m ecgstudy.run_notebook pretrain); empty: read params.yaml

# %%
from IPython.display import Image

from ecgstudy import config, pretrain
from ecgstudy.outputs import stage_outputs
from ecgstudy.paths import resolve
from ecgstudy.plots import training as training_plots

cfg = config.stage_config("pretrain", params)
out = stage_outputs("pretrain", models=True)
store_dir = resolve(cfg.data.curated) / cfg.pretrain.store
cfg.pretrain

# %% [markdown]
# ## Pretrain the encoder

# %%
result = pretrain.run_pretrain(cfg.pretrain, store_dir, out.models, seed=cfg.seed, history_csv=out.plots / "loss.csv")
result.history

# %% [markdown]
# ## Loss curve
# Training and validation InfoNCE loss per epoch (left; chance level is log of the batch size) and how
# often the matching segment is ranked first (right).

# %%
Image(filename=training_plots.loss_curves(result.history, out.figure("loss"), title=f"{cfg.pretrain.objective} pretraining"))

# %%
result.metrics

# %%
out.write_metrics(result.metrics)
