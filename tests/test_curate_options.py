"""Curation of long and reduced-lead records: the windows length policy, minimum leads, declared lead aliases,
and excluded.parquet when nothing is kept (library and CLI)."""

import numpy as np
import pandas as pd
import pytest
from _wfdb_records import write_dat

from ecgstudy import cli
from ecgstudy.data import preprocess
from ecgstudy.data.curation import CurateConfig, curate
from ecgstudy.data.quality import QCConfig
from ecgstudy.data.store import Store, StoreError

PTB = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6", "vx", "vy", "vz"]


def _ecg(fs: float, seconds: float, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(fs * seconds))) / fs
    beats = np.exp(-(((t * 1.1) % 1.0 - 0.5) ** 2) / 0.001)
    return np.stack([beats * (0.4 + 0.1 * k) + rng.normal(0, 0.02, t.size) for k in range(n)], axis=1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """38.4 s at 1000 Hz with Frank leads (PTB Diagnostic), 25 s of MLII + V5 at 360 Hz (MIT-BIH), a 10 s 12-lead."""
    root = tmp_path_factory.mktemp("long_reduced")
    write_dat(root / "ptb" / "s0010_re", _ecg(1000, 38.4, 15), 1000, PTB)
    write_dat(root / "mitdb" / "100", _ecg(360, 25.0, 2, seed=1), 360, ["MLII", "V5"])
    write_dat(root / "plain" / "r1", _ecg(500, 10.0, 12, seed=2), 500, PTB[:12])
    (root / "patients.csv").write_text("record_id,patient_id\nptb/s0010_re,p1\nmitdb/100,p2\nplain/r1,p3\n")
    return root


def test_defaults_exclude_long_and_two_lead_records_with_their_reasons(folder, tmp_path):
    summary = curate("wfdb", folder, tmp_path / "store", CurateConfig(n_workers=1), progress=False)
    excluded = Store(tmp_path / "store").excluded().set_index("record_id")
    assert summary["n_kept"] == 1
    assert excluded.loc["ptb/s0010_re", "reason"] == "wrong_duration"
    assert excluded.loc["mitdb/100", "reason"] == "wrong_duration"


def test_windows_policy_aliases_and_min_leads_keep_them_as_patient_level_rows(folder, tmp_path):
    cfg = CurateConfig(n_workers=1, length_policy="windows", lead_aliases={"MLII": "II"}, qc=QCConfig(min_leads=2),
                       val_fraction=0.0, test_fraction=0.0)
    summary = curate("wfdb", folder, tmp_path / "store", cfg, progress=False)
    store = Store(tmp_path / "store")
    rec = store.records
    assert summary["n_kept"] == 3 and summary["n_rows"] == len(store) == 3 + 2 + 1  # 38.4 s -> 3, 25 s -> 2, 10 s -> 1
    long = rec[rec["record_id"] == "ptb/s0010_re"]
    assert long["window"].tolist() == [0, 1, 2] and np.allclose(long["offset_s"], [0.0, 10.0, 20.0])
    assert set(long["patient_id"]) == {"p1"} and long["split"].nunique() == 1
    mit = np.flatnonzero(rec["record_id"].to_numpy() == "mitdb/100")
    assert store.lead_mask[mit].sum(axis=1).tolist() == [2, 2]
    assert store.lead_mask[mit[0], [1, 10]].all()  # II (from MLII) and V5
    assert np.isnan(store.signals[mit[0], 0]).all() and np.isfinite(store.signals[mit[0], 1]).all()
    # window 1 of the long record is seconds 10-20 of it, resampled like any record (Frank leads dropped)
    raw = _ecg(1000, 38.4, 15)[:, :12].T
    expected = preprocess.harmonise(raw, 1000, fs_out=100, n_samples=3840)[0][:, 1000:2000]
    np.testing.assert_allclose(store.signals[long.index[1]], expected, atol=2e-3)  # 1 uV ADC steps
    assert store.meta["lead_aliases"] == {"MLII": "II"}


def test_undeclared_aliases_are_dropped_and_bad_ones_fail():
    data = np.ones((2, 5))
    _, mask = preprocess.to_standard_leads(data, ["MLII", "V5"])
    assert mask.sum() == 1
    _, mask = preprocess.to_standard_leads(data, ["mlii", "V5"], {"MLII": "ii"})
    assert mask[[1, 10]].all()
    with pytest.raises(ValueError, match="target must be one of"):
        CurateConfig(lead_aliases={"MLII": "lead2"}).validate()
    with pytest.raises(ValueError, match="rename a standard lead"):
        preprocess.check_aliases({"V1": "II"})


def test_nothing_kept_still_leaves_excluded_parquet_and_no_store(folder, tmp_path):
    out = tmp_path / "store"
    with pytest.raises(ValueError, match="no record passed curation.*excluded.parquet"):
        curate("wfdb", folder, out, CurateConfig(n_workers=1, duration_s=60.0), progress=False)
    table = pd.read_parquet(out / "excluded.parquet")
    assert set(table["record_id"]) == {"ptb/s0010_re", "mitdb/100", "plain/r1"}
    assert set(table["reason"]) == {"wrong_duration"}
    assert sorted(p.name for p in out.iterdir()) == ["excluded.parquet"]
    with pytest.raises(StoreError, match="no meta.json"):
        Store(out)
    curate("wfdb", folder, out, CurateConfig(n_workers=1), progress=False)  # the folder is replaceable
    assert len(Store(out)) == 1


def test_curate_cli_exposes_the_qc_options(folder, tmp_path, capsys):
    out = tmp_path / "store"
    code = cli.main(["curate", "--source", "wfdb", "--root", str(folder), "--out", str(out), "--workers", "1",
                     "--length-policy", "windows", "--min-leads", "2", "--lead-alias", "MLII=II"])
    assert code == 0 and "3 records -> 6 store rows" in capsys.readouterr().out
    code = cli.main(["curate", "--source", "wfdb", "--root", str(folder), "--out", str(tmp_path / "s2"),
                     "--workers", "1", "--duration-tolerance-s", "-1", "--min-leads", "2", "--lead-alias", "MLII=II"])
    assert code == 0 and len(Store(tmp_path / "s2")) == 3  # any length, centre-cropped to 10 s
    code = cli.main(["curate", "--source", "wfdb", "--root", str(folder), "--out", str(tmp_path / "s3"),
                     "--lead-alias", "MLII"])
    assert code == 2 and "expected NAME=LEAD" in capsys.readouterr().err
