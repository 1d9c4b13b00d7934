"""The PTB-XL-format reader and the WFDB reading underneath it."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgstudy.data.sources import ReadFailure, Record, RecordReadError, open_source
from ecgstudy.data.sources.ptbxl import PTBXLSource
from ecgstudy.data.sources.wfdb_io import read_header, read_record

from conftest import BAD_EXPECTED, PTBXL_LEADS, sine_signal


def test_catalog_ids_metadata_and_order(ptbxl_dir):
    src = PTBXLSource(ptbxl_dir, target_fs=100)
    cat = src.catalog()
    assert cat["record_id"].tolist() == [str(i) for i in range(1, 15)]
    assert cat["patient_id"].iloc[0] == "1" and cat["patient_id"].iloc[3] == "3"
    assert {"age", "sex", "site", "device", "strat_fold", "codes"} <= set(cat.columns)
    assert cat.loc[cat["record_id"] == "10", "site"].item() == "2"  # float site ids become "2"
    assert src.declared_external_sites() == ["2"]  # from simulation.json
    assert src.parse_codes(cat["codes"].iloc[2], "3") == {"IMI": 50.0, "ILMI": 0.0, "SR": 0.0}
    assert len(src.vocabulary) == 71


@pytest.mark.parametrize(
    "target_fs, resolution, fs", [(100, "auto", 100), (250, "auto", 500), (100, "records500", 500)]
)
def test_resolution_choice_and_contents(ptbxl_dir, target_fs, resolution, fs):
    src = open_source("ptbxl", ptbxl_dir, target_fs=target_fs, resolution=resolution)
    sig = src.read_signal(0)  # ecg_id 1
    assert sig.fs == fs and sig.data.shape == (12, 10 * fs)
    assert list(sig.leads) == PTBXL_LEADS and set(sig.units) == {"mV"}
    expected = sine_signal(fs, 10.0, phase=0.1).T
    np.testing.assert_allclose(sig.data, expected, atol=0.6e-3)  # 1 uV quantisation


def test_lead_spelling_and_order_come_from_the_header(ptbxl_dir):
    src = PTBXLSource(ptbxl_dir, target_fs=100)
    assert src.read_signal(2).leads[3:6] == ("avr", "avl", "avf")  # ecg_id 3
    assert src.read_signal(3).leads == tuple(reversed(PTBXL_LEADS))  # ecg_id 4


def test_missing_root_and_database_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        PTBXLSource(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="ptbxl_database.csv"):
        PTBXLSource(tmp_path / "empty")


def test_root_may_hold_the_unzipped_release_folder(tmp_path, ptbxl_dir):
    shutil.copytree(ptbxl_dir, tmp_path / "ptb-xl-1.0.3")
    src = PTBXLSource(tmp_path, target_fs=100)
    assert src.root.name == "ptb-xl-1.0.3" and len(src.catalog()) == 14


def test_duplicate_ecg_id_is_an_error(ptbxl_copy):
    db = pd.read_csv(ptbxl_copy / "ptbxl_database.csv")
    pd.concat([db, db.iloc[[4]]]).to_csv(ptbxl_copy / "ptbxl_database.csv", index=False)
    with pytest.raises(ValueError, match=r"duplicate ecg_id.*\b5\b"):
        PTBXLSource(ptbxl_copy)


def test_missing_required_column_is_an_error(ptbxl_copy):
    db = pd.read_csv(ptbxl_copy / "ptbxl_database.csv").drop(columns="scp_codes")
    db.to_csv(ptbxl_copy / "ptbxl_database.csv", index=False)
    with pytest.raises(ValueError, match="scp_codes"):
        PTBXLSource(ptbxl_copy)


def test_missing_statement_table_falls_back_to_the_bundled_one(ptbxl_copy):
    (ptbxl_copy / "scp_statements.csv").unlink()
    assert len(PTBXLSource(ptbxl_copy).vocabulary) == 71


@pytest.mark.parametrize("resolution", ["records100", "records500"])
def test_bad_files_raise_reasons(ptbxl_bad_dir, resolution):
    src = PTBXLSource(ptbxl_bad_dir, resolution=resolution)
    ids = src.catalog()["record_id"].tolist()
    for ecg_id in (20, 21, 22, 23):
        with pytest.raises(RecordReadError) as info:
            src.read_signal(ids.index(str(ecg_id)))
        assert info.value.reason == BAD_EXPECTED[ecg_id]
        assert f"{ecg_id:05d}" in info.value.detail


def test_records_iterator_yields_failures_instead_of_crashing(ptbxl_bad_dir):
    out = list(_GoodLabels(ptbxl_bad_dir, target_fs=100).records())
    failures = {o.record_id: o.reason for o in out if isinstance(o, ReadFailure)}
    assert failures == {str(i): BAD_EXPECTED[i] for i in (20, 21, 22, 23)}
    record = next(o for o in out if isinstance(o, Record) and o.record_id == "3")
    assert record.patient_id == "2" and record.codes["IMI"] == 50.0 and record.meta["strat_fold"] == 3


class _GoodLabels(PTBXLSource):
    """The bad folder with record 31's malformed labels treated as empty (to iterate every record)."""

    def parse_codes(self, cell, record_id):
        return {} if record_id == "31" else super().parse_codes(cell, record_id)


def test_ground_truth_and_masks(ptbxl_dir):
    src = PTBXLSource(ptbxl_dir)
    gt = src.ground_truth()
    assert {"record_id", "gt_hr_bpm", "gt_pr_ms", "gt_qrs_ms", "gt_qt_ms", "gt_axis_deg", "gt_codes"} <= set(gt.columns)
    assert gt.loc[gt["record_id"] == "5", "gt_hr_bpm"].item() == 65.0
    masks = src.signature_masks()
    assert masks.columns[0] == "record_id" and "ecg_id" not in masks.columns
    assert masks["lead"].tolist() == ["II", "aVF", "V5", "I"]


def test_header_parser_reads_descriptions_and_optional_fields(tmp_path):
    (tmp_path / "r.hea").write_text(
        "# comment\nr 2 360 4\nr.dat 16 200(5)/uV 12 0 0 1220 0 lead one\nr.dat 16 0 12 0\n"
    )
    h = read_header(tmp_path / "r.hea")
    assert h.fs == 360 and h.sig_len == 4 and h.simple
    assert h.names == ("lead one", "signal1") and h.units == ("uV", "mV")
    assert h.gains == (200.0, 200.0) and h.baselines == (5, 0) and h.checksums == (1220, None)
    np.array([[5, 0], [205, 200], [405, 400], [605, 600]], "<i2").tofile(tmp_path / "r.dat")
    sig = read_record(tmp_path / "r")
    np.testing.assert_allclose(sig.data, [[0, 1, 2, 3], [0, 1, 2, 3]])


def test_uncommon_formats_fall_back_to_wfdb(tmp_path):
    data = sine_signal(500, 2.0, 0.3)
    wfdb.wrsamp("x", fs=500, units=["mV"] * 12, sig_name=PTBXL_LEADS, p_signal=data, fmt=["212"] * 12,
                adc_gain=[200.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))
    assert not read_header(tmp_path / "x.hea").simple
    sig = read_record(tmp_path / "x")
    np.testing.assert_allclose(sig.data, data.T, atol=1 / 200)
