"""The ecgstudy command line: simulate, curate (with a summary), and clear errors."""

import pandas as pd

from ecgstudy import cli
from ecgstudy.data.store import Store


def test_simulate_then_curate(tmp_path, capsys):
    raw = tmp_path / "raw"
    assert cli.main(["simulate", "--out", str(raw), "--n-records", "30", "--seed", "3"]) == 0
    db = pd.read_csv(raw / "downstream" / "ptbxl_database.csv", index_col="ecg_id")
    assert len(db) == 30
    foundation = pd.read_csv(raw / "foundation" / "ptbxl_database.csv", index_col="ecg_id")
    assert len(foundation) == 80 and not set(foundation.patient_id) & set(db.patient_id)  # ratio 8000 : 3000 kept
    out = tmp_path / "store"
    code = cli.main(["curate", "--source", "ptbxl", "--root", str(raw / "downstream"), "--out", str(out), "--fs", "50",
                     "--workers", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "kept" in printed and "splits:" in printed
    store = Store(out)
    assert store.fs == 50 and store.signals.shape[2] == 500
    assert len(store) + len(store.excluded()) == 30


def test_curate_missing_root_is_a_clear_error(tmp_path, capsys):
    code = cli.main(["curate", "--source", "ptbxl", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "s")])
    assert code == 2
    err = capsys.readouterr().err
    assert "nope" in err
    assert not (tmp_path / "s").exists()


def test_simulate_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert cli.main(["simulate", "--out", str(out), "--n-records", "10"]) == 2
    assert (out / "keep.txt").read_text() == "mine"
    assert "not empty" in capsys.readouterr().err
