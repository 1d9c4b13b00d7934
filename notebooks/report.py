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
# # Report: one page with every figure and metric of the study
#
# Assembles the metrics (reports/metrics/*.json), result tables (reports/tables/) and figures
# (reports/figures/) of every stage, in pipeline order, into one self-contained HTML page
# (reports/report.html: figures embedded, nothing fetched when it is opened), stamped with the run date,
# the git commit and the parameters used.

# %% tags=["parameters"]
params: dict = {}  # stage sections of params.yaml injected by the runner (python -m ecgstudy.run_notebook report); empty: read params.yaml

# %%
from ecgstudy import config
from ecgstudy.stages import report

cfg = config.stage_config("report", params)
cfg.report

# %%
page = report.run(cfg)
print(f"{page}: {page.stat().st_size / 1e6:.2f} MB")
