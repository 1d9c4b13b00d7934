"""The PhysioNet/CinC 2020-2021 reader: challenge .mat and .dat records, #Dx labels, bad inputs, curation."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import wfdb

from ecgstudy.data import preprocess
from ecgstudy.data.curation import CurateConfig, curate
from ecgstudy.data.labels import LabelError
from ecgstudy.data.sources import RecordReadError, open_source
from ecgstudy.data.sources.cinc import CinCSource

from _wfdb_records import CINC_LEADS, cinc_comments, write_dat, write_mat
from conftest import sine_lead_params, sine_signal

ROOT_NAME = "challenge"

#: Good records: id -> (writer, fs, Dx, age, sex, expected labels, expected unmapped concepts).
GOOD = {
    "cpsc_2018/g1/A0001": ("mat", 500, "164889003,59118001", "74", "Male", {"AFIB", "CRBBB"}, ""),
    "cpsc_2018/g1/A0002": ("mat", 500, "426783006", "NaN", "Female", {"SR"}, ""),
    "georgia/g1/A0001": ("dat", 500, "164934002,39732003", "63", "F", {"TAB_"}, "39732003"),
    "georgia/g2/E00002": ("mat", 500, "270492004, 426783006,", "Unknown", "M", {"1AVB", "SR"}, ""),
    "st_petersburg_incart/I0001": ("mat", 257, "164884008,17338001", "65", "Unknown", {"PVC"}, ""),
    "ptb/S0001": ("dat_uv", 1000, "164865005", "40", "Male", set(), "164865005"),
    "chapman_shaoxing/JS00001": ("mat", 500, "426177001,123456789", "58", "Female", {"SBRAD"}, "123456789"),
    "R0001": ("dat", 500, "164890007", "80", "Male", {"AFLT"}, ""),
}
#: Bad records: id -> expected exclusion reason in curation.
BAD = {
    "bad/missing_signal": "missing_file",
    "bad/truncated_mat": "truncated_data",
    "bad/mismatch_mat": "header_data_mismatch",
    "bad/corrupt_mat": "checksum_mismatch",
    "bad/truncated_dat": "truncated_data",
    "bad/nan_lead": "missing_leads",
    "bad/empty": "empty_record",
    "bad/no_dx": "bad_labels",
    "bad/malformed_dx": "bad_labels",
    "bad/short": "wrong_duration",
}


def _phase(record_id: str) -> float:
    return 0.1 * (sorted(GOOD).index(record_id) + 1) if record_id in GOOD else 0.5


def _write_good(root: Path, record_id: str) -> None:
    kind, fs, dx, age, sex, _, _ = GOOD[record_id]
    sig = sine_signal(fs, 10.0, _phase(record_id))
    comments = cinc_comments(dx, age, sex)
    if record_id == "georgia/g2/E00002":  # leads stored in reverse order, lower-case augmented names
        names = [n.lower() if n.startswith("aV") else n for n in CINC_LEADS][::-1]
        write_mat(root / record_id, sig[:, ::-1], fs, names, comments=comments)
    elif kind == "mat":
        write_mat(root / record_id, sig, fs, comments=comments)
    elif kind == "dat":
        write_dat(root / record_id, sig, fs, comments=comments)
    else:  # microvolts, 1 ADC unit per uV
        write_dat(root / record_id, sig * 1000.0, fs, units="uV", gain=1.0, comments=comments)


def _write_bad(root: Path) -> None:
    sig = sine_signal(500, 10.0, 0.5)
    ok = cinc_comments("164889003")
    for name in ("missing_signal", "truncated_mat", "mismatch_mat", "corrupt_mat"):
        write_mat(root / "bad" / name, sig, 500, comments=ok)
    (root / "bad/missing_signal.mat").unlink()
    mat = root / "bad/truncated_mat.mat"
    mat.write_bytes(mat.read_bytes()[: mat.stat().st_size // 2])
    write_mat(root / "bad/mismatch_mat", sig, 500, comments=ok, sig_len=4000)  # header: 4000 samples, file: 5000
    mat = root / "bad/corrupt_mat.mat"
    data = bytearray(mat.read_bytes())
    data[1000:1004] = b"\x11\x22\x33\x44"
    mat.write_bytes(bytes(data))
    write_dat(root / "bad/truncated_dat", sig, 500, comments=ok)
    dat = root / "bad/truncated_dat.dat"
    dat.write_bytes(dat.read_bytes()[:5000])
    nan = sig.copy()
    nan[:, 7] = np.nan  # V2 invalid throughout
    write_mat(root / "bad/nan_lead", nan, 500, comments=ok)
    write_mat(root / "bad/empty", sig[:0], 500, comments=ok)
    write_mat(root / "bad/no_dx", sig, 500, comments=cinc_comments(None))
    write_mat(root / "bad/malformed_dx", sig, 500, comments=cinc_comments("164889003,AF"))
    write_mat(root / "bad/short", sig[:3000], 500, comments=ok)  # 6 s


@pytest.fixture(scope="module")
def cinc_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cinc") / ROOT_NAME
    for record_id in GOOD:
        _write_good(root, record_id)
    _write_bad(root)
    (root / "georgia" / "notes.txt").write_text("not a record")
    return root


@pytest.fixture(scope="module")
def source(cinc_dir) -> CinCSource:
    return CinCSource(cinc_dir, target_fs=100)


def _position(src: CinCSource, record_id: str) -> int:
    return src.catalog()["record_id"].tolist().index(record_id)


# ----------------------------------------------------------------------------------------------
# Catalog and labels


def test_catalog_ids_sites_patients_and_metadata(source):
    cat = source.catalog()
    assert cat["record_id"].tolist() == sorted([*GOOD, *BAD])
    assert (cat["patient_id"] == cat["record_id"]).all()  # no patient ids: each record its own patient
    row = cat.set_index("record_id")
    assert row.at["georgia/g1/A0001", "site"] == "georgia" and row.at["cpsc_2018/g1/A0001", "site"] == "cpsc_2018"
    assert row.at["R0001", "site"] == ROOT_NAME  # a record directly in the root: the root's name
    assert row.at["cpsc_2018/g1/A0001", "age"] == 74 and np.isnan(row.at["cpsc_2018/g1/A0002", "age"])
    assert np.isnan(row.at["georgia/g2/E00002", "age"])  # "Unknown"
    sexes = row.loc[["cpsc_2018/g1/A0001", "cpsc_2018/g1/A0002", "georgia/g1/A0001", "georgia/g2/E00002"], "sex"]
    assert sexes.tolist() == [0.0, 1.0, 1.0, 0.0]
    assert np.isnan(row.at["st_petersburg_incart/I0001", "sex"])
    assert row.at["st_petersburg_incart/I0001", "header_fs"] == 257 and row.at["ptb/S0001", "header_fs"] == 1000
    assert row.at["st_petersburg_incart/I0001", "header_samples"] == 2570 and row.at["R0001", "n_leads"] == 12
    assert row.at["georgia/g2/E00002", "dx_snomed"] == "270492004,426783006"


def test_labels_and_unmapped_concepts(source):
    cat = source.catalog().set_index("record_id")
    for record_id, (*_, labels, unmapped) in GOOD.items():
        assert set(source.parse_codes(cat.at[record_id, "codes"], record_id)) == labels, record_id
        assert cat.at[record_id, "unmapped_dx"] == unmapped, record_id
    assert source.parse_codes("164889003,59118001", "x") == {"AFIB": 1.0, "CRBBB": 1.0}
    assert source.vocabulary.codes[:2] == ["NDT", "NST_"] and len(source.vocabulary) == 71


def test_missing_or_malformed_dx_is_a_label_error_naming_the_record(source):
    cat = source.catalog().set_index("record_id")
    assert cat.at["bad/no_dx", "codes"] is None
    with pytest.raises(LabelError, match="record bad/no_dx: its header has no #Dx line"):
        source.parse_codes(cat.at["bad/no_dx", "codes"], "bad/no_dx")
    with pytest.raises(LabelError, match="record bad/malformed_dx: 'AF' is not a SNOMED CT concept id"):
        source.parse_codes(cat.at["bad/malformed_dx", "codes"], "bad/malformed_dx")
    with pytest.raises(LabelError, match="empty #Dx"):
        source.parse_codes(" , ", "r")


def test_unknown_concepts_are_logged(cinc_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="ecgstudy.data.sources.cinc"):
        CinCSource(cinc_dir).catalog()
    assert "123456789" in caplog.text and "164865005" not in caplog.text  # the latter is a known, unmapped concept


def test_catalog_reads_headers_only(cinc_dir, monkeypatch):
    import ecgstudy.data.sources.wfdb_folder as wf

    def no_signals(*args, **kwargs):
        raise AssertionError("catalog() must not read signal files")

    monkeypatch.setattr(wf, "read_wfdb_record", no_signals)
    monkeypatch.setattr(np, "fromfile", no_signals)
    assert len(CinCSource(cinc_dir).catalog()) == len(GOOD) + len(BAD)


# ----------------------------------------------------------------------------------------------
# Signals


def test_mat_record_contents_rate_leads_and_units(source):
    sig = source.read_signal(_position(source, "cpsc_2018/g1/A0001"))
    assert sig.fs == 500 and sig.data.shape == (12, 5000)
    assert list(sig.leads) == CINC_LEADS and set(sig.units) == {"mV"}
    expected = sine_signal(500, 10.0, _phase("cpsc_2018/g1/A0001")).T
    np.testing.assert_allclose(sig.data, expected, atol=0.6e-3)  # 1 uV quantisation


def test_mat_fixture_is_matlab_v4_and_read_like_wfdb_reads_it(cinc_dir, source):
    base = cinc_dir / "cpsc_2018/g1/A0001"
    val = scipy.io.loadmat(f"{base}.mat")["val"]
    assert val.shape == (12, 5000) and val.dtype == np.int16
    reference = wfdb.rdrecord(str(base), physical=True, return_res=64)
    ours = source.read_signal(_position(source, "cpsc_2018/g1/A0001"))
    np.testing.assert_array_equal(ours.data, reference.p_signal.T)
    assert reference.comments[2] == "Dx: 164889003,59118001"


def test_lead_order_and_spelling_are_normalised(source):
    sig = source.read_signal(_position(source, "georgia/g2/E00002"))
    assert sig.leads[:3] == ("V6", "V5", "V4") and "avr" in sig.leads
    assert [preprocess.standard_lead_name(n) for n in sig.leads] == CINC_LEADS[::-1]
    data, mask = preprocess.to_standard_leads(sig.data, sig.leads)
    assert mask.all()
    np.testing.assert_allclose(data, sine_signal(500, 10.0, _phase("georgia/g2/E00002")).T, atol=0.6e-3)


@pytest.mark.parametrize("record_id, fs, unit", [("st_petersburg_incart/I0001", 257, "mV"), ("ptb/S0001", 1000, "uV")])
def test_rates_and_microvolt_units(source, record_id, fs, unit):
    sig = source.read_signal(_position(source, record_id))
    assert sig.fs == fs and sig.data.shape == (12, 10 * fs) and set(sig.units) == {unit}
    mv = preprocess.to_millivolts(sig.data, sig.units)
    amp, _ = sine_lead_params(11)
    assert np.abs(mv[11]).max() == pytest.approx(amp, abs=2e-3)
    np.testing.assert_allclose(mv, sine_signal(fs, 10.0, _phase(record_id)).T, atol=1e-3)


@pytest.mark.parametrize("record_id", [r for r, reason in BAD.items() if reason in
                                       ("missing_file", "truncated_data", "header_data_mismatch", "checksum_mismatch")])
def test_bad_files_raise_reasons_naming_the_file(source, record_id):
    with pytest.raises(RecordReadError) as info:
        source.read_signal(_position(source, record_id))
    assert info.value.reason == BAD[record_id]
    assert record_id.split("/")[1] in info.value.detail


def test_nan_lead_and_empty_record_are_read_faithfully(source):
    sig = source.read_signal(_position(source, "bad/nan_lead"))
    assert np.isnan(sig.data[7]).all() and not np.isnan(np.delete(sig.data, 7, axis=0)).any()
    empty = source.read_signal(_position(source, "bad/empty"))
    assert empty.data.shape == (12, 0) and empty.duration_s == 0.0


# ----------------------------------------------------------------------------------------------
# Folder problems, registry, pickling


def test_wrong_root_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        CinCSource(tmp_path / "nowhere")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "A0001.mat").write_bytes(b"")
    with pytest.raises(ValueError, match=r"no WFDB header \(\*\.hea\) under .*empty"):
        CinCSource(tmp_path / "empty")


def test_duplicate_record_id_names_both_files(tmp_path):
    sig = sine_signal(500, 10.0, 0.0)
    write_mat(tmp_path / "ds" / "A0001", sig, 500, comments=cinc_comments("164889003"))
    (tmp_path / "ds" / "A0001.HEA").write_text((tmp_path / "ds" / "A0001.hea").read_text())
    with pytest.raises(ValueError, match=r"duplicate record id 'ds/A0001': .*A0001\.(hea|HEA) and .*A0001\.(hea|HEA)"):
        CinCSource(tmp_path)


def test_registered_and_picklable(cinc_dir):
    src = open_source("cinc", cinc_dir, target_fs=100, resolution="auto")
    assert isinstance(src, CinCSource)
    clone = pickle.loads(pickle.dumps(src))
    position = _position(src, "chapman_shaoxing/JS00001")
    np.testing.assert_array_equal(clone.read_signal(position).data, src.read_signal(position).data)
    pd.testing.assert_frame_equal(clone.catalog(), src.catalog())


# ----------------------------------------------------------------------------------------------
# End to end


@pytest.fixture(scope="module")
def curated(tmp_path_factory, cinc_dir) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("cinc_store") / "store"
    cfg = CurateConfig(external_sites=("georgia",), n_workers=2, chunk_size=4)  # worker processes get the reader
    return out, curate("cinc", cinc_dir, out, cfg, seed=0, progress=False)


def test_curation_labels_exclusions_and_splits(curated):
    out, summary = curated
    records = pd.read_parquet(out / "records.parquet")
    assert records["record_id"].tolist() == sorted(GOOD)
    assert (records["source"] == "cinc").all()
    y = records.set_index("record_id")[[c for c in records.columns if c.startswith("y_")]]
    assert y.shape[1] == 71
    for record_id, (*_, labels, unmapped) in GOOD.items():
        assert {c[2:] for c in y.columns[y.loc[record_id].to_numpy() == 1]} == labels, record_id
    assert y["y_NORM"].sum() == 0
    row = records.set_index("record_id")
    assert row.at["chapman_shaoxing/JS00001", "unmapped_dx"] == "123456789"
    assert row.at["st_petersburg_incart/I0001", "fs"] == 257
    assert set(records.loc[records["site"] == "georgia", "split"]) == {"external"}
    assert "external" not in set(records.loc[records["site"] != "georgia", "split"])
    assert records.groupby("patient_id")["split"].nunique().max() == 1

    excluded = pd.read_parquet(out / "excluded.parquet")
    dropped = excluded[excluded["action"] == "excluded"]
    assert dict(zip(dropped["record_id"], dropped["reason"])) == BAD
    assert summary["n_kept"] == len(GOOD) and summary["n_excluded"] == len(BAD)
    detail = dropped.set_index("record_id")["detail"]
    assert detail["bad/missing_signal"].startswith("signal file not found: bad/missing_signal.mat")  # root stripped


def test_curated_signals_are_resampled_sines(curated):
    out, _ = curated
    records = pd.read_parquet(out / "records.parquet")
    signals = np.load(out / "signals.npy", mmap_mode="r")
    t = np.arange(1000) / 100
    for record_id in ("cpsc_2018/g1/A0001", "st_petersburg_incart/I0001", "ptb/S0001", "georgia/g2/E00002"):
        i = records.index[records["record_id"] == record_id][0]
        expected = np.stack([a * np.sin(2 * np.pi * f * t + _phase(record_id))
                             for a, f in map(sine_lead_params, range(12))])
        np.testing.assert_allclose(signals[i][:, 50:-50], expected[:, 50:-50], atol=5e-3, err_msg=record_id)
