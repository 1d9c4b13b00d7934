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
# # Saliency: does the classifier look where the disease is?
#
# Saliency maps are usually judged by eye. For held-out records of the test split, the fine-tuned
# classifier's logit of each condition the record has is explained with integrated gradients (zero
# baseline) and gradient x input. What happens next depends on the data:
#
# - **Simulated cohort (ground truth).** The simulator knows, for every condition of every record, the
#   leads and time spans where its signature was placed, so the maps are scored against these masks: the
#   pointing game (is the most attributed point inside the signature?), the share of attribution inside it
#   relative to the signature's share of the ECG (enrichment; chance 1), and the AUROC of attribution as a
#   detector of signature samples (chance 0.5). Two reference maps frame the numbers: random attribution
#   (chance) and the absolute signal (a map that only knows where the ECG is large).
# - **Real data (no ground truth).** Nothing says where a finding lies, so nothing is scored (the metrics
#   say `ground_truth: false` and hold no localisation score). The maps are described instead: for a
#   seeded sample of records reported positive for each condition, the share of attribution each lead
#   carries, i.e. which leads the model relies on for that condition. Read it against the physiology (an
#   inferior infarct should draw on II, III and aVF) and against the signal magnitude's share (with
#   per-lead standardised inputs, about 1/12 per lead).
#
# First, in both cases, a check that attribution can find a known region: a model trained on a synthetic
# task whose answer lies in one place must put its attribution there.

# %% tags=["parameters"]
params: dict = {}  # stage sections of params.yaml injected by the runner (python -m ecgstudy.run_notebook saliency); empty: read params.yaml

# %%
from IPython.display import Image, display

from ecgstudy import config
from ecgstudy.stages import saliency

cfg = config.stage_config("saliency", params)
cfg.saliency

# %% [markdown]
# ## Attribute (and score, where masks exist)
# `saliency.run` does the whole stage: it explains the classifier that `saliency.classifier` names (a
# fine-tuning strategy at a label fraction) on the store's held-out records, scores or describes the maps,
# runs the check below, and writes the tables, figures and `reports/metrics/saliency.json`. The cells
# below show what it wrote. First the summary by method.

# %%
result = saliency.run(cfg)
result.summary

# %% [markdown]
# ## Attribution vs a baseline that needs no model
# With ground truth, each attribution method is compared with the signal-magnitude map |x| (smoothed and
# scored the same way) over the same (record, condition) pairs: the difference of the means, with an
# interval from resampling the pairs' patients (Holm over the two attribution methods). Integrated
# gradients' AUROC difference is the study's saliency claim. Without ground truth there is nothing to compare.

# %%
result.paired

# %% [markdown]
# ## Check on a task with a known answer
# A small CNN is trained for a few steps on synthetic records whose label depends only on a bump in V2
# between 3 and 4 s; its attribution must concentrate on the bump far above the random map.

# %%
result.validity

# %% [markdown]
# ## Summary figure
# Ground truth: localisation scores by method, means over (record, condition) pairs with 95% intervals
# from resampling patients, grey bars the reference maps. No ground truth: the share of integrated-gradients attribution
# per lead for each condition (rows sum to 1; the line on the colour bar marks the uniform 1/12).

# %%
Image(filename=result.figures["summary"])

# %% [markdown]
# ## By condition
# Ground truth: integrated gradients' scores next to the random map's. No ground truth: integrated
# gradients' share per lead, the mean probability the model gave the condition, and the three leads it
# relies on most.

# %%
result.by_condition

# %% [markdown]
# ## Examples
# Integrated-gradients attribution (heat) on held-out ECGs, one per condition (the record the model is
# most confident about); with ground truth, blue boxes outline where the simulator placed the condition's
# signature.

# %%
for path in result.example_figures:
    display(Image(filename=path))

# %% [markdown]
# ## Metrics
# The headline numbers, as written to `reports/metrics/saliency.json`.

# %%
result.metrics
