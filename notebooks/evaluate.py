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
# # Evaluation: intervals and paired comparisons of every claim
#
# The training stages saved each model's probabilities on the records it is scored on; here every
# interval and comparison is computed from them, so a statistics setting (`evaluate.*.n_boot`, `ci`)
# reruns this stage and the report, never a training. Three families of comparisons:
#
# - **Pretraining**: a linear probe on each frozen pretrained encoder vs the same architecture at random
#   initialisation, macro AUROC on the validation split (paired bootstrap of validation records).
# - **Fine-tuning**: macro AUROC / AUPRC of every strategy and label fraction on the test split and the
#   external site, with bootstrap intervals on resamples shared by all models of a split, and paired
#   differences (pretrained vs scratch, linear probe vs random probe, pretrained vs linear probe).
# - **Rare-disease transfer**: mean test AUROC over repeated training sets with an interval over test
#   records (each resample scores every repeat), and foundation minus scratch on the same resamples.

# %% tags=["parameters"]
params: dict = {}  # stage sections of params.yaml injected by the runner (python -m ecgstudy.run_notebook evaluate); empty: read params.yaml

# %%
from IPython.display import Image

from ecgstudy import config
from ecgstudy.stages import evaluate

cfg = config.stage_config("evaluate", params)
cfg.evaluate

# %%
result = evaluate.run(cfg)

# %% [markdown]
# ## Linear probe: pretrained vs random init
# Macro AUROC on the validation split of a linear head on frozen embeddings, per pretraining run, next to
# the same architecture at random initialisation; the error bar is the 95% paired bootstrap interval of
# the gain.

# %%
Image(filename=result.figures["probe_comparison"])

# %%
result.probe.round(3)

# %% [markdown]
# ## Label efficiency
# Macro AUROC against the share of training patients whose labels were used, with 95% bootstrap bands.

# %%
Image(filename=result.figures["label_efficiency"])

# %% [markdown]
# ## Paired differences
# Each pair of models is scored on the same bootstrap resamples; an interval excluding 0 is a difference
# the test set can resolve.

# %%
result.finetune_comparisons[result.finetune_comparisons["metric"] == "auroc"]

# %% [markdown]
# ## Foundation vs scratch on rare diseases
# Test AUROC per condition against the number of training cases (error bars: 95% bootstrap intervals;
# dashed line: chance). No rare-disease set: no figure.

# %%
Image(filename=result.figures["transfer"]) if "transfer" in result.figures else result.metrics["transfer"]

# %%
result.transfer_comparisons
