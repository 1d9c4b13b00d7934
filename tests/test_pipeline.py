"""End to end: the whole `dvc repro` on a tiny variant of the study (the session fixture `study`, conftest.py).

Also checks the bad-input paths a user meets first: a mistyped params key, a missing dataset root.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


pytestmark = pytest.mark.slow

STAGES = ["curate", "pretrain", "finetune", "transfer", "evaluate", "latent", "saliency"]
#: Stages that draw figures (finetune and transfer save scores; evaluate draws their figures).
FIGURE_STAGES = ["curate", "pretrain", "evaluate", "latent", "saliency"]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ECGSTUDY_ROOT"}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["MPLBACKEND"] = "agg"
    return env


def _run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def test_every_stage_writes_its_outputs(study):
    for stage in STAGES:
        metrics = json.loads((study / "reports" / "metrics" / f"{stage}.json").read_text())
        assert metrics, stage
        assert (study / "reports" / "notebooks" / f"{stage}.ipynb").is_file(), stage
    for stage in FIGURE_STAGES:
        assert any((study / "reports" / "figures" / stage).glob("*.png")), stage
    assert (study / "models" / "pretrain" / "encoder.pt").is_file()
    assert any((study / "models" / "finetune").glob("*.pt"))
    for scores in ("pretrain/probe_scores.npz", "finetune/scores.npz", "transfer/scores.npz"):
        assert (study / "models" / scores).is_file(), scores


def test_report_assembles_every_stage(study):
    html = (study / "reports" / "report.html").read_text()
    for stage in STAGES:
        assert stage in html.lower()
    n_figures = sum(len(list((study / "reports" / "figures" / s).glob("*.png"))) for s in FIGURE_STAGES)
    assert html.count("<img") >= n_figures


def test_metrics_are_sane(study):
    curate = json.loads((study / "reports" / "metrics" / "curate.json").read_text())
    assert curate["records"] + curate["main_excluded"] == 150 + 30  # downstream + external corpora (params_tiny)
    assert curate["stores"]["foundation"]["role"] == "foundation" and curate["normalisation_fitted_on"] == "foundation:train"
    assert set(curate["site_separability"]) >= {"foundation_site", "main_site", "foundation+main_corpus"}
    finetune = (study / "reports" / "tables" / "finetune")
    assert any(finetune.glob("*.csv"))


def test_pipeline_is_up_to_date_after_repro(study):
    status = _run(["dvc", "status"], study).stdout
    assert "Data and pipelines are up to date" in status or "data.dvc" in status.replace("\n", " ")
    assert "changed" not in status.split("data.dvc")[0]


def test_mistyped_params_key_fails_naming_the_key(study):
    params = yaml.safe_load((study / "params.yaml").read_text())
    params["finetune"]["fractionz"] = [0.1]
    bad = study / "bad_params.yaml"
    bad.write_text(yaml.safe_dump(params))
    result = _run([sys.executable, "-m", "ecgstudy.run_notebook", "finetune", "--params", str(bad)], study, check=False)
    assert result.returncode == 2
    assert "finetune.fractionz" in result.stderr and "fractions" in result.stderr


def test_missing_dataset_root_fails_clearly_and_keeps_the_store(study):
    params = yaml.safe_load((study / "params.yaml").read_text())
    params["study"]["data_source"] = "ptbxl"
    params["data"] = {**params["data"], "root": "data/raw/no_such_dataset"}
    bad = study / "bad_root.yaml"
    bad.write_text(yaml.safe_dump(params))
    before = (study / "data" / "curated" / "main" / "records.parquet").read_bytes()
    notebook = (study / "reports" / "notebooks" / "curate.ipynb").read_bytes()
    result = _run([sys.executable, "-m", "ecgstudy.run_notebook", "curate", "--params", str(bad)], study, check=False)
    assert result.returncode != 0
    assert "no_such_dataset" in result.stdout + result.stderr
    assert (study / "data" / "curated" / "main" / "records.parquet").read_bytes() == before
    assert (study / "reports" / "notebooks" / "curate.ipynb").read_bytes() == notebook  # the good run's copy stays
    assert (study / "reports" / "notebooks" / "curate.failed.ipynb").is_file()  # the failed one beside it


def test_a_statistics_setting_reruns_only_evaluate_and_report(study):
    params = yaml.safe_load((study / "params.yaml").read_text())
    params["evaluate"]["finetune"]["n_boot"] = 25
    (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = _run(["dvc", "status"], study).stdout
        changed = {line.strip().rstrip(":") for line in status.splitlines() if line and not line.startswith("\t")}
        assert changed - {"data.dvc"} == {"evaluate"}, status  # report follows once evaluate's outputs change
    finally:
        _run(["git", "checkout", "params.yaml"], study)


def test_editing_finetune_code_leaves_pretrain_up_to_date(study):
    module = study / "ecgstudy" / "stages" / "finetune.py"
    original = module.read_text()
    module.write_text(original + "\n# edited\n")
    try:
        status = _run(["dvc", "status", "pretrain", "finetune"], study).stdout
        assert "finetune:" in status and "pretrain:" not in status, status
    finally:
        module.write_text(original)
