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
# # Latent space: what has the pretrained encoder learned to tell apart?
#
# ECG-FM's latent analysis asks whether records with the same diagnosis sit together in the embedding
# space of a self-supervised encoder. Here the pretrained encoder and its random-init twin (the
# pretraining run's own initial weights, batch norm re-estimated on the same records: the baseline every
# self-supervised claim must beat, since random convolutional features are already informative) embed the
# same records. A k-nearest-neighbour probe, fitted on the training split and scored on the test split,
# measures how much diagnostic information the raw neighbourhoods hold (macro AUROC and AUPRC over a fixed
# label set, no training of any head); intervals and the paired difference pretrained - random init come
# from resampling the test sample's patients. UMAP draws the test split and the external
# site, coloured by diagnostic superclass and by recording site: a good foundation encoder groups
# diagnoses, and ideally does not separate sites (a k-NN site classifier near chance).

# %% tags=["parameters"]
params: dict = {}  # stage sections of params.yaml injected by the runner (python -m ecgstudy.run_notebook latent); empty: read params.yaml

# %%
from IPython.display import Image

from ecgstudy import config
from ecgstudy.stages import latent

cfg = config.stage_config("latent", params)
cfg.latent

# %% [markdown]
# ## Embed, probe and project
# Both encoders embed the same seeded sample of records; embeddings are standardised with the training
# sample's statistics before the probe and UMAP. The stage writes the tables, the UMAP coordinates, both
# figures and the metrics shown here.

# %%
result = latent.run(cfg)
result.metrics

# %% [markdown]
# ## UMAP by diagnosis and by site

# %%
Image(filename=result.figures["umap"])

# %% [markdown]
# ## k-NN probe per label
# AUROC of the neighbour vote for each label with enough positives in both splits (dashed: chance).

# %%
Image(filename=result.figures["knn_probe_auroc"])

# %% [markdown]
# ## Age and sex in the embedding
# k-NN regression of age (mean absolute error in years; `age_mae_mean_predictor` is what predicting the
# mean age scores) and k-NN sex AUROC on the evaluation split, with patient-bootstrap intervals, for the
# pretrained encoder and its random-init twin. Published anchor: a 12-lead CNN trained on ~500,000 ECGs,
# age MAE 6.9 years, sex AUROC 0.97 (Attia et al. 2019).

# %%
import pandas as pd

pd.DataFrame({enc: {k: v for k, v in result.metrics[enc].items() if "age" in k or "sex" in k}
              for enc in latent.ENCODERS}).round(3)
