"""The CODE-15% reader: HDF5 parts matched by exam_id, padding removal, units, labels, bad inputs."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from ecgstudy.data.curation import CurateConfig, curate
from ecgstudy.data.labels import LabelError
from ecgstudy.data.quality import QCConfig
from ecgstudy.data.sources import RecordReadError, open_source
from ecgstudy.data.sources.code15 import FS, LABEL_MAP, Code15Source, strip_padding

from conftest import sine_lead_params, sine_signal

N_SAMPLES = 4096
LABELS = list(LABEL_MAP)  # 1dAVb, RBBB, LBBB, SB, ST, AF, normal_ecg

#: exam_id -> spec. ``part``: index of the HDF5 part holding it (None: in no part); ``labels``: the true
#: CODE labels; ``duration_s``: recording length; ``edit``: callable(signal (n, 12) mV) -> signal.
EXAMS: dict[int, dict] = {
    1001: {"patient": 1, "part": 0, "labels": {"normal_ecg"}},
    1002: {"patient": 1, "part": 1, "labels": {"SB"}},
    1003: {"patient": 2, "part": 0, "labels": {"RBBB", "1dAVb"}},
    1004: {"patient": 3, "part": 0, "labels": {"AF"}},
    1005: {"patient": 4, "part": 1, "labels": {"LBBB"}, "duration_s": 7.0},
    1006: {"patient": 5, "part": 1, "labels": {"ST"}},
    1007: {"patient": 6, "part": 0, "labels": set()},
    1008: {"patient": 7, "part": 1, "labels": {"normal_ecg"}},
    1009: {"patient": 8, "part": 0, "labels": {"normal_ecg", "SB"}},
    1010: {"patient": 9, "part": 1, "labels": set()},
    1011: {"patient": 9, "part": 0, "labels": {"AF", "RBBB"}},
    # bad exams
    2001: {"patient": 20, "part": None, "labels": set()},
    2002: {"patient": 21, "part": 0, "labels": set(), "edit": lambda s: _set(s, np.s_[:, 7], np.nan)},
    2003: {"patient": 22, "part": 1, "labels": set(), "edit": lambda s: _set(s, np.s_[100:110, 2], np.nan)},
    2004: {"patient": 23, "part": 1, "labels": set(), "edit": lambda s: s * 0.0},
    2005: {"patient": 24, "part": 0, "labels": set(), "bad_label": "maybe"},
}
GOOD = [e for e in EXAMS if e < 2000]
#: Expected exclusion reasons with the default curation config (1005 is 7 s: wrong_duration).
EXPECTED_EXCLUDED = {
    "1005": "wrong_duration",
    "2001": "missing_tracing",
    "2002": "missing_leads",
    "2003": "non_finite",
    "2004": "empty_record",
    "2005": "bad_labels",
}
SERIAL = CurateConfig(n_workers=1)


def _set(sig: np.ndarray, where, value) -> np.ndarray:
    sig = sig.copy()
    sig[where] = value
    return sig


def _phase(exam_id: int) -> float:
    return 0.3 + 0.01 * (exam_id % 100) + (0.5 if exam_id > 2000 else 0.0)


def exam_signal_mv(exam_id: int) -> np.ndarray:
    """(n_samples, 12) mV at 400 Hz, standard lead order, before padding."""
    spec = EXAMS[exam_id]
    sig = sine_signal(FS, spec.get("duration_s", 10.0), _phase(exam_id))
    return spec["edit"](sig) if "edit" in spec else sig


def padded_tracing(exam_id: int) -> np.ndarray:
    """(4096, 12) float32 as CODE-15% stores it: 2 x mV, centred, zero-padded on both sides."""
    sig = 2.0 * exam_signal_mv(exam_id)
    out = np.zeros((N_SAMPLES, 12), np.float32)
    start = (N_SAMPLES - len(sig)) // 2
    out[start : start + len(sig)] = sig
    return out


def write_part(path: Path, exam_ids: list[int], extra_rows: dict[int, np.ndarray] | None = None) -> None:
    """One exams_part file: the exams in the given order, extra (id -> tracing) rows, the padding row."""
    rows = [padded_tracing(e) for e in exam_ids] + list((extra_rows or {}).values())
    ids = list(exam_ids) + list((extra_rows or {}).keys())
    with h5py.File(path, "w") as f:
        f.create_dataset("tracings", data=np.stack(rows + [np.zeros((N_SAMPLES, 12), np.float32)]))
        f.create_dataset("exam_id", data=np.array(ids + [0], dtype=np.int64))


def write_exams_csv(root: Path, exam_ids: list[int]) -> None:
    rows = []
    for e in exam_ids:
        spec = EXAMS[e]
        row = {"exam_id": e, "age": 40 + e % 50, "is_male": e % 2 == 1, "nn_predicted_age": 41.5 + e % 50}
        row.update({label: label in spec["labels"] for label in LABELS if label != "normal_ecg"})
        row.update(
            patient_id=spec["patient"],
            death=(e == 1001) if e in (1001, 1003) else None,
            timey=5.2 if e in (1001, 1003) else None,
            normal_ecg="normal_ecg" in spec["labels"],
            trace_file=f"exams_part{spec['part'] if spec['part'] is not None else 9}.hdf5",
        )
        if "bad_label" in spec:
            row["AF"] = spec["bad_label"]
        rows.append(row)
    columns = ["exam_id", "age", "is_male", "nn_predicted_age", "1dAVb", "RBBB", "LBBB", "SB", "ST", "AF",
               "patient_id", "death", "timey", "normal_ecg", "trace_file"]
    pd.DataFrame(rows)[columns].to_csv(root / "exams.csv", index=False)


@pytest.fixture(scope="module")
def code15_dir(tmp_path_factory) -> Path:
    """exams.csv in shuffled order; two parts whose exam order differs from the CSV's; an exam in no part,
    an exam (9999) in a part but not in exams.csv."""
    root = tmp_path_factory.mktemp("code15") / "code15"
    root.mkdir()
    order = list(np.random.default_rng(3).permutation(list(EXAMS)))
    write_exams_csv(root, [int(e) for e in order])
    for part in (0, 1):
        ids = sorted((e for e in EXAMS if EXAMS[e]["part"] == part), reverse=part == 0)
        extra = {9999: padded_tracing(1001)} if part == 1 else None
        write_part(root / f"exams_part{part}.hdf5", ids, extra)
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory, code15_dir) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("code15_store") / "store"
    return out, curate("code15", code15_dir, out, SERIAL, seed=0, progress=False)


def _expected_at(fs: float, n: int, phase: float, start_s: float = 0.0) -> np.ndarray:
    t = start_s + np.arange(n) / fs
    return np.stack([a * np.sin(2 * np.pi * f * t + phase) for a, f in (sine_lead_params(k) for k in range(12))])


# -- the reader ------------------------------------------------------------------------------------


def test_catalog_ids_patients_metadata(code15_dir):
    src = open_source("code15", code15_dir, target_fs=100, resolution="auto")  # curate's options are accepted
    assert isinstance(src, Code15Source) and len(src.vocabulary) == 71
    cat = src.catalog()
    assert cat["record_id"].tolist() == [str(e) for e in sorted(EXAMS)]  # sorted by exam_id; 0 and 9999 absent
    row = cat.set_index("record_id").loc["1002"]
    assert row["patient_id"] == "1" and row["site"] == "code15" and row["sex"] == 1.0  # 1002 is even: female
    assert cat.set_index("record_id").loc["1001", "sex"] == 0.0  # is_male -> PTB-XL's 0 = male
    assert {"age", "nn_predicted_age", "death", "timey", "trace_file"} <= set(cat.columns)


def test_labels_map_to_scp_codes(code15_dir):
    src = Code15Source(code15_dir)
    cat = src.catalog().set_index("record_id")
    assert src.parse_codes(cat.loc["1003", "codes"], "1003") == {"1AVB": 100.0, "CRBBB": 100.0}
    assert src.parse_codes(cat.loc["1009", "codes"], "1009") == {"SBRAD": 100.0, "NORM": 100.0}
    assert src.parse_codes(cat.loc["1007", "codes"], "1007") == {}
    assert src.parse_codes(cat.loc["1004", "codes"], "1004") == {"AFIB": 100.0}
    assert set(src.parse_codes(cat.loc["1005", "codes"], "1005")) == {"CLBBB"}
    assert set(src.parse_codes(cat.loc["1006", "codes"], "1006")) == {"STACH"}
    with pytest.raises(LabelError, match=r"record 2005: CODE label AF='maybe'"):
        src.parse_codes(cat.loc["2005", "codes"], "2005")
    with pytest.raises(LabelError, match="record 7"):
        src.parse_codes("AF", "7")


def test_rows_are_matched_by_exam_id_and_padding_is_stripped(code15_dir):
    src = Code15Source(code15_dir)
    ids = src.catalog()["record_id"].tolist()
    for exam in GOOD:  # each exam carries its own phase: a positional mix-up would not match
        sig = src.read_signal(ids.index(str(exam)))
        n = int(EXAMS[exam].get("duration_s", 10.0) * FS)
        assert sig.fs == 400 and sig.data.shape == (12, n) and sig.duration_s == pytest.approx(n / FS)
        assert set(sig.units) == {"mV"} and sig.leads[:3] == ("I", "II", "III") and sig.leads[6] == "V1"
        np.testing.assert_allclose(sig.data, exam_signal_mv(exam).T, atol=1e-6)  # 2 x mV stored -> mV


def test_unit_factor_can_be_overridden(code15_dir):
    ids = [str(e) for e in sorted(EXAMS)]
    half = Code15Source(code15_dir).read_signal(ids.index("1001")).data
    unscaled = Code15Source(code15_dir, mv_per_unit=1.0).read_signal(ids.index("1001")).data
    np.testing.assert_allclose(unscaled, 2 * half)
    with pytest.raises(ValueError, match="mv_per_unit"):
        Code15Source(code15_dir, mv_per_unit=0)


def test_bad_exams_raise_reasons(code15_dir):
    src = Code15Source(code15_dir)
    ids = src.catalog()["record_id"].tolist()
    with pytest.raises(RecordReadError) as info:
        src.read_signal(ids.index("2001"))
    assert info.value.reason == "missing_tracing" and "2001" in info.value.detail and "exams_part9" in info.value.detail
    with pytest.raises(RecordReadError) as info:
        src.read_signal(ids.index("2004"))
    assert info.value.reason == "empty_record" and "exams_part1.hdf5" in info.value.detail
    nan_lead = src.read_signal(ids.index("2002"))  # the all-NaN lead does not hide the padding
    assert nan_lead.data.shape == (12, 4000) and np.isnan(nan_lead.data[7]).all()


def test_strip_padding():
    data = np.zeros((3, 10))
    data[0, 3:7] = [1.0, 0.0, 0.0, 2.0]  # zeros inside the signal are kept
    data[2] = np.nan  # a lead that is NaN throughout is ignored
    out, first = strip_padding(data)
    assert first == 3 and out.shape == (3, 4) and out[0].tolist() == [1.0, 0.0, 0.0, 2.0]
    data[1, 8] = np.nan  # a NaN inside a present lead counts as signal
    assert strip_padding(data)[0].shape == (3, 6)
    assert strip_padding(np.zeros((2, 5)))[0].shape == (2, 0)
    assert strip_padding(np.full((2, 5), np.nan))[0].shape == (2, 0)


def test_reader_pickles_without_open_files(code15_dir):
    src = Code15Source(code15_dir)
    first = src.read_signal(0)  # opens part 0 in this process
    assert src._handles
    clone = pickle.loads(pickle.dumps(src))
    assert clone._handles == {}
    np.testing.assert_array_equal(clone.read_signal(0).data, first.data)
    src.close()
    clone.close()


# -- curation end to end ---------------------------------------------------------------------------


def test_curated_store_signals_labels_and_exclusions(store):
    out, summary = store
    excluded = pd.read_parquet(out / "excluded.parquet")
    assert dict(zip(excluded["record_id"], excluded["reason"])) == EXPECTED_EXCLUDED
    records = pd.read_parquet(out / "records.parquet")
    kept = [str(e) for e in GOOD if str(e) not in EXPECTED_EXCLUDED]
    assert records["record_id"].tolist() == kept
    assert (records["fs"] == 400).all() and (records["duration_s"] == 10.0).all()
    assert (records["source"] == "code15").all() and (records["site"] == "code15").all()
    signals = np.load(out / "signals.npy", mmap_mode="r")
    assert signals.shape == (len(kept), 12, 1000)  # 400 Hz -> the store's 100 Hz
    core = slice(50, -50)  # polyphase filter edges
    for i, exam in enumerate(kept):  # standard lead order, mV
        np.testing.assert_allclose(signals[i][:, core], _expected_at(100, 1000, _phase(int(exam)))[:, core], atol=5e-3)
    assert summary["n_catalog"] == len(EXAMS) and summary["n_kept"] == len(kept)


def test_curated_label_counts(store):
    records = pd.read_parquet(store[0] / "records.parquet").set_index("record_id")
    y = records[[c for c in records.columns if c.startswith("y_")]]
    counts = {c[2:]: int(n) for c, n in y.sum().items() if n}
    # kept: 1001 NORM, 1002 SB, 1003 RBBB+1dAVb, 1004 AF, 1006 ST, 1007 -, 1008 NORM, 1009 NORM+SB, 1010 -, 1011 AF+RBBB
    assert counts == {"NORM": 3, "SBRAD": 2, "CRBBB": 2, "1AVB": 1, "AFIB": 2, "STACH": 1}
    assert records.loc["1003", ["y_CRBBB", "y_1AVB"]].tolist() == [1, 1] and records.loc["1003", "y_IRBBB"] == 0
    assert y.loc["1007"].sum() == 0 and y.loc["1010"].sum() == 0


def test_patients_never_straddle_splits(store):
    records = pd.read_parquet(store[0] / "records.parquet")
    assert (records.groupby("patient_id")["split"].nunique() == 1).all()
    assert records.loc[records["patient_id"] == "9", "record_id"].tolist() == ["1010", "1011"]
    assert set(records["split"]) <= {"train", "val", "test"}


def test_short_exam_and_nan_lead_kept_when_qc_allows(tmp_path, code15_dir):
    cfg = CurateConfig(n_workers=1, qc=QCConfig(duration_tolerance_s=None, min_leads=11))
    summary = curate("code15", code15_dir, tmp_path / "s", cfg, progress=False)
    assert summary["excluded_by_reason"] == {"bad_labels": 1, "empty_record": 1, "missing_tracing": 1, "non_finite": 1}
    records = pd.read_parquet(tmp_path / "s" / "records.parquet").set_index("record_id")
    i = records.index.get_loc("1005")  # 7 s exam: true duration, centred in the 10 s store window
    assert records.loc["1005", "duration_s"] == pytest.approx(7.0) and records.loc["1005", "offset_s"] == -1.5
    signals = np.load(tmp_path / "s" / "signals.npy", mmap_mode="r")
    assert np.all(signals[i][:, :150] == 0) and np.all(signals[i][:, 850:] == 0)
    np.testing.assert_allclose(signals[i][:, 200:800], _expected_at(100, 700, _phase(1005))[:, 50:650], atol=5e-3)
    mask = np.load(tmp_path / "s" / "lead_mask.npy")
    j = records.index.get_loc("2002")
    assert mask[j].tolist() == [k != 7 for k in range(12)] and np.isnan(signals[j, 7]).all()


def test_parallel_workers_read_the_same_store(tmp_path, code15_dir, store):
    curate("code15", code15_dir, tmp_path / "p", CurateConfig(n_workers=2, chunk_size=3), progress=False)
    assert (tmp_path / "p" / "signals.npy").read_bytes() == (store[0] / "signals.npy").read_bytes()
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "p" / "records.parquet"), pd.read_parquet(store[0] / "records.parquet")
    )


# -- bad folders -----------------------------------------------------------------------------------


@pytest.fixture
def small_dir(tmp_path) -> Path:
    """A valid two-exam folder (1001 in part 0, 1002 in part 1) for tests that damage it."""
    root = tmp_path / "small"
    root.mkdir()
    write_exams_csv(root, [1001, 1002])
    write_part(root / "exams_part0.hdf5", [1001])
    write_part(root / "exams_part1.hdf5", [1002])
    return root


def _rewrite_part(path: Path, **datasets) -> None:
    path.unlink()
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            f.create_dataset(name, data=data)


@pytest.mark.parametrize(
    "datasets, message",
    [
        ({"exam_id": np.array([1002, 0])}, r"exams_part1\.hdf5: no dataset 'tracings'"),
        ({"tracings": np.zeros((2, 16, 12), np.float32)}, r"exams_part1\.hdf5: no dataset 'exam_id'"),
        ({"tracings": np.zeros((2, 16, 8), np.float32), "exam_id": np.array([1002, 0])},
         r"exams_part1\.hdf5: dataset 'tracings' has shape \(2, 16, 8\)"),
        ({"tracings": np.zeros((2, 16, 12), np.float32), "exam_id": np.array([1002, 0, 5])},
         r"exams_part1\.hdf5: dataset 'exam_id' has shape \(3,\)"),
        ({"tracings": np.zeros((2, 16, 12), np.float32), "exam_id": np.array([0.5, 0.0])},
         r"exams_part1\.hdf5: dataset 'exam_id' is not integer"),
    ],
)
def test_malformed_part_is_a_configuration_error(small_dir, datasets, message):
    _rewrite_part(small_dir / "exams_part1.hdf5", **datasets)
    with pytest.raises(ValueError, match=message):
        Code15Source(small_dir)


def test_corrupt_part_file_is_named(small_dir):
    (small_dir / "exams_part1.hdf5").write_bytes(b"this is not an HDF5 file" * 10)
    with pytest.raises(ValueError, match=r"exams_part1\.hdf5: not a readable HDF5 file"):
        Code15Source(small_dir)


def test_duplicate_exam_ids_are_errors(small_dir):
    write_part(small_dir / "exams_part1.hdf5", [1002, 1001])  # 1001 also in part 0
    with pytest.raises(ValueError, match=r"exam_id 1001 occurs twice: in exams_part0\.hdf5 and in exams_part1"):
        Code15Source(small_dir)
    write_part(small_dir / "exams_part1.hdf5", [1002, 1002])
    with pytest.raises(ValueError, match=r"exams_part1\.hdf5: duplicate exam_id\(s\) \[1002\]"):
        Code15Source(small_dir)
    write_part(small_dir / "exams_part1.hdf5", [1002])
    exams = pd.read_csv(small_dir / "exams.csv")
    pd.concat([exams, exams.iloc[[0]]]).to_csv(small_dir / "exams.csv", index=False)
    with pytest.raises(ValueError, match=r"exams\.csv: duplicate exam_id\(s\) \[1001\]"):
        Code15Source(small_dir)


def test_exams_csv_problems(small_dir):
    exams = pd.read_csv(small_dir / "exams.csv")
    exams.drop(columns="RBBB").to_csv(small_dir / "exams.csv", index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['RBBB'\]"):
        Code15Source(small_dir)
    exams.assign(exam_id=["1001", "x"]).to_csv(small_dir / "exams.csv", index=False)
    with pytest.raises(ValueError, match="non-integer exam_id"):
        Code15Source(small_dir)


def test_wrong_root_and_missing_files_name_the_path(tmp_path, small_dir):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        Code15Source(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="exams.csv"):
        Code15Source(tmp_path / "empty")
    for part in small_dir.glob("exams_part*.hdf5"):
        part.unlink()
    with pytest.raises(FileNotFoundError, match=r"no exams_part\*\.hdf5 files in .*small"):
        Code15Source(small_dir)


def test_root_may_hold_the_release_folder(tmp_path, small_dir):
    shutil.copytree(small_dir, tmp_path / "outer" / "code15")
    src = Code15Source(tmp_path / "outer")
    assert src.root.name == "code15" and src.catalog()["record_id"].tolist() == ["1001", "1002"]
