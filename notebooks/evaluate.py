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
# # Evaluation: intervals, paired comparisons and a verdict for every claim
#
# The training stages saved each model's probabilities, one array per training repeat; here every
# interval and comparison is computed from them, so a statistics setting (`evaluate.*.n_boot`, `ci`,
# `min_positives`, `min_effect`) reruns this stage and the report, never a training.
#
# - **Resampling**: each bootstrap resample draws the evaluation set's *patients* with replacement (all
#   records of a drawn patient come along) and the *training repeats* with replacement, so an interval
#   covers test sampling and training variability; paired comparisons use the same draw for both arms.
# - **Fixed label set** per family: labels with at least `min_positives` positives and negatives in every
#   evaluated split, decided from label counts before any score is read; its size is beside every figure.
#   A label that lacks a class in one resample is skipped there (counted), never redrawn.
# - **Multiplicity**: Holm over each family (pretraining runs vs random init and vs each other; every pair
#   of fine-tuning strategies per fraction x split; foundation vs scratch per rare condition x size).
# - **Claims**: one row per seed-paper claim with its adjusted interval and a verdict (reproduced / not
#   reproduced / inconclusive at this scale), by the rule in docs/architecture.md, "Statistics".

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
# ## The claims
# One row per seed-paper claim: the AUROC difference that tests it (positive = the paper's direction), its
# Holm-adjusted interval and level, the size of the label set behind it, the repeats, and the verdict.

# %%
result.claims[["title", "estimate", "low", "high", "level", "n_labels", "repeats", "verdict", "measure"]]

# %% [markdown]
# ## Linear probe: pretrained vs random init
# Validation macro AUROC of a linear head on frozen embeddings, per pretraining run, next to the same
# architecture at random initialisation; the error bar is the Holm-adjusted interval of the gain.

# %%
Image(filename=result.figures["probe_comparison"]) if "probe_comparison" in result.figures else result.metrics["label_sets"]

# %%
result.probe_comparisons[result.probe_comparisons["metric"] == "auroc"].round(3)

# %% [markdown]
# ## Label efficiency
# Macro AUROC against the share of training patients whose labels were used, with 95% bands (patients and
# repeats resampled).

# %%
Image(filename=result.figures["label_efficiency"]) if "label_efficiency" in result.figures else result.finetune

# %% [markdown]
# ## Paired differences between fine-tuning strategies
# Each pair is scored on the same patient and repeat draws; `low`/`high` is the Holm-adjusted interval
# (level in `level`), `low_unadj`/`high_unadj` the unadjusted 95% one.

# %%
result.finetune_comparisons[result.finetune_comparisons["metric"] == "auroc"].round(3)

# %% [markdown]
# ## Foundation vs scratch on rare diseases
# Test AUROC per condition against the number of training cases (error bars: 95% intervals; dashed line:
# chance). No rare-disease set: no figure.

# %%
Image(filename=result.figures["transfer"]) if "transfer" in result.figures else result.metrics["transfer"]

# %%
result.transfer_comparisons[result.transfer_comparisons["metric"] == "auroc"].round(3)
