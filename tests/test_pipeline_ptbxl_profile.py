"""End to end on a real-data layout: the PTB-XL profile runs every stage when PTB-XL is present.

PTB-XL itself cannot be shipped, so the simulated world's downstream corpus is written in PTB-XL's format
and stripped of everything real PTB-XL lacks (simulator ground truth, signature masks, declared external
sites, rare sets); its foundation corpus, in the same format, is the pretraining corpus that the profile
otherwise takes from CODE-15%. The pipeline then sees exactly what a user with PTB-XL on disk gives it: `make params
PROFILE=ptbxl` (plus tiny sizes) and `dvc repro`.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ecgstudy import params_file
from ecgstudy.paths import repo_root
from test_pipeline import STAGES, _run

pytestmark = pytest.mark.slow

#: Tiny sizes for the profile run (on top of tests/params_tiny.yaml).
TINY_PTBXL = {
    # a second PTB-XL-format corpus stands in for CODE-15% as the foundation corpus (its reader has its own tests)
    "data": {"foundation": {"source": "ptbxl", "root": "data/raw/ptbxl_foundation"}},
    "curate": {"rare_sets": {"codes": ["IMI", "CLBBB", "WPW"], "controls_per_case": 2, "min_cases": 5}},
    "finetune": {"fractions": [1.0], "strategies": ["pretrained", "linear_probe"]},
    "transfer": {"n_train_cases": [3], "strategies": ["foundation", "scratch"]},
    "saliency": {"records_per_condition": 2},
}


@pytest.fixture(scope="module")
def ptbxl_study(tmp_path_factory) -> Path:
    src = repo_root()
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=src, capture_output=True, text=True,
                           check=True).stdout.split()
    dst = tmp_path_factory.mktemp("ptbxl_study")
    for name in files:
        if (src / name).is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dst / name)
    tiny = yaml.safe_load((src / "tests" / "params_tiny.yaml").read_text())
    world = tmp_path_factory.mktemp("world")
    (world / "params.yaml").write_text(params_file.render(params_file.to_sections(tiny)))
    _run([sys.executable, "-m", "ecgstudy.cli", "simulate", "--out", str(world / "raw"), "--n-records", "240",
          "--seed", "5", "--params", str(world / "params.yaml")], dst)
    for corpus, name in (("downstream", "ptbxl"), ("foundation", "ptbxl_foundation")):
        raw = dst / "data" / "raw" / name
        shutil.move(world / "raw" / corpus, raw)
        for extra in ("ground_truth.parquet", "signature_masks.parquet", "simulation.json"):
            (raw / extra).unlink()
    tiny.pop("simulate")
    tiny["study"].pop("corpus_sizes")
    overlay = params_file.merge(params_file.merge(params_file.load_profile("ptbxl", src), params_file.to_sections(tiny)),
                                TINY_PTBXL)
    (dst / "params.yaml").write_text(params_file.render(overlay))
    for metrics in (dst / "reports" / "metrics").glob("*.json"):
        metrics.unlink()
    _run(["git", "init", "-q"], dst)
    _run(["git", "add", "-A"], dst)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "ptbxl profile"], dst)
    _run(["dvc", "repro"], dst)
    return dst


def _metrics(study: Path, stage: str) -> dict:
    return json.loads((study / "reports" / "metrics" / f"{stage}.json").read_text())


def test_every_stage_runs_on_the_ptbxl_layout(ptbxl_study):
    for stage in STAGES:
        assert _metrics(ptbxl_study, stage), stage
        assert (ptbxl_study / "reports" / "notebooks" / f"{stage}.ipynb").is_file(), stage
    records = pd.read_parquet(ptbxl_study / "data" / "curated" / "main" / "records.parquet")
    assert set(records["split"]) == {"train", "val", "test"}  # official folds, no external site declared
    assert not any(c.startswith("gt_") for c in records.columns)
    assert not (ptbxl_study / "data" / "curated" / "raw").exists()  # real data is read in place


def test_real_data_stages_use_the_benchmark_protocol_and_report_no_ground_truth(ptbxl_study):
    finetune = _metrics(ptbxl_study, "finetune")
    assert "windows" in finetune["protocol"]["eval_inputs"] and "max" in finetune["protocol"]["eval_inputs"]
    assert "2.5 s crops" in finetune["protocol"]["train_inputs"]
    saliency = _metrics(ptbxl_study, "saliency")
    assert saliency["ground_truth"] is False
    assert not any("enrichment" in key or "pointing" in key for key in saliency)
    rare = pd.read_parquet(ptbxl_study / "data" / "curated" / "rare" / "records.parquet")
    built = set(rare["case_control_set"])
    assert built and built <= {"IMI", "CLBBB", "WPW"}
    for code in built:  # a patient is never both case and control of one set
        part = rare[rare["case_control_set"] == code]
        roles = part.groupby("patient_id")[f"y_{code}"].nunique()
        assert (roles == 1).all()
    transfer = _metrics(ptbxl_study, "transfer")
    assert built <= set(transfer)  # one entry of AUROCs per rare-disease set drawn from the store
    assert all("foundation_n3" in transfer[code] for code in built)
