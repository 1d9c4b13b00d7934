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
# # Saliency: does the classifier look where the disease is?
#
# Saliency maps are usually judged by eye. The simulated cohort knows, for every condition of every
# record, the leads and time spans where its signature was placed, so here they are scored. For held-out
# records of the test split, the fine-tuned classifier's logit of each condition the record truly has is
# explained with integrated gradients (zero baseline) and gradient x input. Each map is scored against the
# ground-truth mask: the pointing game (is the most attributed point inside the signature?), the share of
# attribution inside it relative to the signature's share of the ECG (enrichment; chance 1), and the
# AUROC of attribution as a detector of signature samples (chance 0.5). Two reference maps frame the
# numbers: random attribution (chance) and the absolute signal (a map that only knows where the ECG is
# large). First, a check that the scoring can tell a model that learned a known region from one that did
# not.

# %% tags=["parameters"]
params: dict = {}  # stage sections of params.yaml injected by the runner (python -m ecgstudy.run_notebook saliency); empty: read params.yaml

# %%
from IPython.display import Image, display

from ecgstudy import config, saliency
from ecgstudy.outputs import stage_outputs
from ecgstudy.paths import resolve
from ecgstudy.plots import ecg as ecg_plots

cfg = config.stage_config("saliency", params)
out = stage_outputs("saliency")
store_dir = resolve(cfg.data.curated) / cfg.saliency.store
cfg.saliency

# %% [markdown]
# ## Attribute and score

# %%
result = saliency.run_saliency(cfg.saliency, store_dir, resolve(cfg.saliency.classifier), seed=cfg.seed)
saliency.write_tables(result, out.tables, out.plots)
result.summary

# %% [markdown]
# ## Scoring check on a task with a known answer
# A small CNN is trained for a few steps on synthetic records whose label depends only on a bump in V2
# between 3 and 4 s; its attribution must concentrate on the bump far above the random map.

# %%
result.validity

# %% [markdown]
# ## Localisation scores by method
# Means over (record, condition) pairs with 95% bootstrap intervals; grey bars are the reference maps.

# %%
Image(filename=ecg_plots.plot_saliency_scores(result.summary, out.figure("saliency_scores")))

# %% [markdown]
# ## By condition

# %%
result.per_condition[result.per_condition["method"].isin(["integrated_gradients", "random"])]

# %% [markdown]
# ## Examples
# Integrated-gradients attribution (heat) on held-out ECGs, one per condition; blue boxes outline where
# the simulator placed the condition's signature.

# %%
for path in saliency.draw_examples(result, out.figures):
    display(Image(filename=path))

# %%
out.write_metrics(result.metrics)
