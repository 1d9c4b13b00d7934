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
# # A guided tour of the study
#
# Read this notebook top to bottom, running each cell (Shift+Enter). It trains nothing: every cell reads
# what the pipeline wrote (`reports/` and the curated store `data/curated/main`) and shows it, so the
# whole tour runs in seconds. The sections follow the pipeline: the data, what pretraining learned, label
# efficiency, rare-disease transfer, the embedding space, saliency. Each one says what its figures show,
# what to look for, and ends with **Try this**: a variant to run, with how long it takes on a laptop
# (2 CPU cores, default `params.yaml`). This notebook is not a pipeline stage; nothing depends on it.
#
# **Before you start**, the study must have run once: `make study` in a terminal at the repository root
# (in JupyterLab: File > New > Terminal), about 36 minutes on 2 cores (35.5 measured with two training workers).
# Until then each section says which command produces what it is missing.
#
# **Everything is one click away**: the first cell below lists every stage with a link to its notebook
# (here in `notebooks/`, opens as a notebook) and to its executed copy with all outputs
# (`reports/notebooks/<stage>.ipynb`, once the stage has run), and links the one-page report
# `reports/report.html`.
#
# The stage notebooks are jupytext `py:percent` files: JupyterLab opens them as notebooks, and saving
# writes code and text back to the `.py` file without outputs. Running one here redoes that stage's work
# and rewrites its outputs, but DVC does not record it; for runs you want to keep and compare, use
# `.venv/bin/dvc repro <stage>` or `dvc exp run` (section 8).

# %%
from ecgstudy import tour

ROOT = tour.root()
print(f"repository: {ROOT}")
tour.overview()

# %% [markdown]
# ## 1. The data: one 12-lead ECG per condition
#
# Stage `curate` (about 1.3 min). The built-in cohort is simulated: a cardiac dipole projected onto the
# 12 leads, with 24 PTB-XL conditions that change the physiology where they really do, three sites whose
# devices differ, and an annotator who misses some borderline findings (so labels are noisy, as in real
# data). The same reader then curates it exactly as it would curate PTB-XL: 100 Hz, 10 s, quality checks,
# splits by patient.
#
# The gallery shows, for each condition, the test-split record where it is the only abnormal finding,
# drawn as a clinical printout (25 mm/s, 10 mm/mV; the bottom row is a lead II rhythm strip). Look for:
# the wide QRS of bundle branch blocks (CLBBB, CRBBB), the irregular RR without P waves of AFIB, the long
# PR of 1AVB, the ST changes of ischaemia in the leads facing the territory (IMI: II, III, aVF).

# %%
tour.show_figures(stages="curate")

# %% [markdown]
# The curated store is plain numpy and pandas: `store.records` (one row per record: ids, site, split,
# `y_<CODE>` labels, and for simulated data the ground truth `gt_*`), `store.signals` (N x 12 x T, mV).
# How many records and patients each split and site holds (no patient is in two splits; the external
# site is a different device and population: the domain-shift test):

# %%
store = tour.open_store()
store

# %%
tour.read_table("splits_by_site", "curate")

# %% [markdown]
# **Try this** (seconds): draw another condition straight from the store. Change `CODE` to any of
# `store.labels` (e.g. `"AFIB"`, `"1AVB"`, `"LVH"`, `"WPW"`) and rerun the cell.

# %%
CODE = "CLBBB"
tour.ecg(store, CODE) if store is not None else None

# %% [markdown]
# **Try this** (about 36 min: the whole study reruns): a perfect annotator. Which AUROCs rise when the
# labels are clean, and does pretraining still help as much?
# `.venv/bin/dvc exp run -S simulate.annotator.miss_rate=0.0`

# %% [markdown]
# ## 2. What pretraining learned
#
# Stage `pretrain` (about 12 min: five runs). Five objectives train an encoder on the foundation corpus's
# training records: supervised multi-label (ECGFounder), contrastive CMSC with random lead masking, MAE-style
# masked reconstruction (all on Net1D, ECGFounder's CNN), wav2vec 2.0 masked prediction and ECG-FM's hybrid
# of it with CMSC and RLM (both on a small wav2vec 2.0 transformer). The loss curves show whether each run converged and whether
# validation loss follows training loss (no panel shares a scale: the objectives' losses differ). The
# probe comparison is the real test: a linear probe on each frozen encoder against the *same* encoder at
# random initialisation. A random CNN already gives a decent probe; what counts is the gain over it,
# with its 95% interval. (Intervals, comparisons and their figures are computed from the saved model
# scores by the `evaluate` stage where the pipeline has one, so a statistics setting never retrains.)

# %%
tour.show_figures("*loss*", "pretrain")

# %%
tour.show_figures("probe_comparison*", ["pretrain", "evaluate"])

# %%
tour.read_table("probe_comparison", ["evaluate", "pretrain"])

# %% [markdown]
# **Try this** (up to about 29 min: pretrain and every stage after it rerun): feed the later stages the
# supervised encoder instead of CMSC (the default, chosen before any result was seen) and compare
# sections 3 to 5: `.venv/bin/dvc exp run -S study.kept_encoder=supervised`

# %% [markdown]
# ## 3. Label efficiency: does pretraining help when labels are few?
#
# Stage `finetune` (about 3.6 min). Four strategies share one architecture: the pretrained encoder
# fine-tuned end to end, the same network trained from scratch, a linear probe on the frozen pretrained
# encoder, and a linear probe on a frozen random encoder. Each is trained on a fraction of the training
# patients and scored once on the test split and on the external site. Look for: the gap between
# pretrained and scratch at the smallest fraction (the papers' claim) and whether it closes at 100%; the
# external-site panel (domain shift) against the test panel; bands (95% bootstrap) that overlap.

# %%
tour.show_figures("*label_efficiency*", ["finetune", "evaluate"])

# %% [markdown]
# Paired differences: each pair of models is scored on the same bootstrap resamples of the test
# records, so an interval that excludes 0 is a difference the test set can resolve.

# %%
tour.read_table("finetune_comparisons", ["evaluate", "finetune"])

# %% [markdown]
# **Try this** (about 9 min: finetune and the stages after it): add smaller label fractions.
# `.venv/bin/dvc exp run -S 'study.label_fractions=[0.02,0.05,0.1,0.25,1.0]'`

# %% [markdown]
# ## 4. Rare-disease transfer
#
# Stage `transfer`. Six rare clinical diagnoses outside PTB-XL's vocabulary (carcinoid heart disease,
# pericardial constriction, rheumatic mitral stenosis, Brugada syndrome, hyperkalaemia, ARVC), whose ECGs
# show them only sometimes and non-specifically, each a small case-control set: the foundation encoder (fine-tuned, or frozen with
# a logistic probe) against training from scratch, at growing numbers of training cases, with 95%
# intervals. Look for: the sizes where scratch is near chance (AUROC 0.5) while the foundation encoder
# is not, and conditions where neither works.

# %%
tour.show_figures("transfer*", ["transfer", "evaluate"])

# %%
tour.read_table("transfer_comparisons", ["evaluate", "transfer"])

# %% [markdown]
# **Try this** (about 6 min: transfer and the stages after it): start from 5 cases per condition.
# `.venv/bin/dvc exp run -S 'study.rare_training_cases=[5,10,20,all]'`

# %% [markdown]
# ## 5. The embedding space: UMAP and a k-NN probe
#
# Stage `latent` (under 1 min). Test-split embeddings (plus the external site) of the pretrained encoder
# (left) and of the same architecture at random initialisation (right), projected by UMAP and coloured by
# diagnostic superclass (top) and by site (bottom). Look for: diagnoses forming regions in the
# pretrained map but not in the random one, and sites mixing (a model that separates sites has learned
# the device, not the heart). The k-NN probe puts a number on it, label by label.

# %%
tour.show_figures(stages="latent")

# %% [markdown]
# **Try this** (about 1 min: latent and the report): UMAP with more neighbours and looser packing shows
# more global structure. `.venv/bin/dvc exp run -S latent.umap_neighbors=50 -S latent.umap_min_dist=0.5`
# (or run it from the last cell of this notebook).

# %% [markdown]
# ## 6. Saliency: where does the classifier look?
#
# Stage `saliency` (under 1 min). Integrated-gradient attributions of the fine-tuned classifier on
# held-out ECGs. On simulated data the simulator knows where each condition's signature lies, lead by
# lead (blue boxes), so the maps can be scored: the bar chart compares them with two references (the
# signal's own magnitude and random maps). Look for: heat inside the boxes (QRS for bundle branch block,
# ST-T for ischaemia) and scores clearly above the references.

# %%
tour.show_figures(stages="saliency")

# %% [markdown]
# **Try this** (about 1 min: saliency and the report): integrated gradients with fewer path steps. The
# metrics report the completeness error the approximation leaves; how large does it get, and do the
# scores change? `.venv/bin/dvc exp run -S saliency.n_steps=8`. Or explain the model trained from
# scratch instead of the pretrained one: does it look at the same places?
# `.venv/bin/dvc exp run -S saliency.classifier.strategy=scratch`

# %% [markdown]
# ## 7. Everything else the study wrote
#
# Every figure not shown above (a new figure, or a stage added later), then the whole report:
# [reports/report.html](../reports/report.html) (every figure and metric table on one page).

# %%
tour.show_other_figures()

# %% [markdown]
# ## 8. Run a variant from here, then compare
#
# Set `VARIANT` to the overrides of any **Try this** above and `RUN = True`, then run the cell: it calls
# `dvc exp run -S ...` at the repository root and prints DVC's log (DVC reruns only the stages whose
# parameters changed and those after them). Then rerun the section's cells to see the new figures.
# In a terminal, `.venv/bin/dvc exp show` lists the runs with their parameters and metrics, and
# `.venv/bin/dvc metrics diff` compares the workspace with the committed results. To go back to the
# committed study: `git checkout params.yaml dvc.lock && .venv/bin/dvc checkout dvc.yaml` (the outputs come
# back from DVC's cache, nothing reruns). `dvc exp run --temp` instead runs in a temporary copy and leaves
# the workspace as it is.

# %%
VARIANT = ["latent.umap_neighbors=50", "latent.umap_min_dist=0.5"]  # about 1 min on a 2-core laptop
RUN = False
if RUN:
    tour.run_variant(VARIANT)
else:
    print("Set RUN = True to run:", "dvc exp run", *(f"-S {v}" for v in VARIANT))
