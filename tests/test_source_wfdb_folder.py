"""The any-folder-of-WFDB-records reader: recursive scan, multi-segment records, patients.csv, bad inputs."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgstudy.data.curation import CurateConfig, curate
from ecgstudy.data.sources import RecordReadError, open_source
from ecgstudy.data.sources.wfdb_folder import WFDBFolderSource, read_wfdb_record

from _wfdb_records import CINC_LEADS, cinc_comments, write_dat, write_mat
from conftest import sine_signal

#: Good records: id -> (fs, site, patient).
GOOD = {
    "r4": (500, "unknown", "r4"),
    "site_a/deep/er/r2": (500, "site_a", "site_a/deep/er/r2"),
    "site_a/r1": (500, "site_a", "p1"),
    "site_b/multi": (500, "site_b", "site_b/multi"),
    "site_b/r3": (250, "site_b", "p1"),
}
#: Bad records: id -> expected exclusion reason in curation.
BAD = {
    "site_c/bad_header": "bad_header",
    "site_c/empty": "empty_record",
    "site_c/extended": "header_data_mismatch",
    "site_c/gap": "non_finite",
    "site_c/nan_lead": "missing_leads",
    "site_c/no_signal": "missing_file",
    "site_c/truncated": "truncated_data",
}


def _phase(record_id: str) -> float:
    return 0.3 * (sorted([*GOOD, *BAD]).index(record_id) + 1)


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wfdb") / "pool"
    for record_id in ("r4", "site_a/r1"):
        write_dat(root / record_id, sine_signal(500, 10.0, _phase(record_id)), 500)
    write_dat(root / "site_b/r3", sine_signal(250, 10.0, _phase("site_b/r3")), 250,
              comments=cinc_comments(None, age="47", sex="Female"))
    write_mat(root / "site_a/deep/er/r2", sine_signal(500, 10.0, _phase("site_a/deep/er/r2")), 500)
    # multi-segment, fixed layout: two 5 s halves of one 10 s sine
    whole = sine_signal(500, 10.0, _phase("site_b/multi"))
    write_dat(root / "site_b/multi_1", whole[:2500], 500)
    write_dat(root / "site_b/multi_2", whole[2500:], 500)
    (root / "site_b/multi.hea").write_text("multi/2 12 500 5000\nmulti_1 2500\nmulti_2 2500\n")
    # multi-segment, variable layout with a 1 s gap (NaN inside the leads: excluded as non_finite)
    write_dat(root / "site_c/gap_1", whole[:2000], 500)
    write_dat(root / "site_c/gap_2", whole[2500:], 500)
    layout = "".join(f"~ 0 1000/mV 16 0 0 0 0 {lead}\n" for lead in CINC_LEADS)
    (root / "site_c/gap_layout.hea").write_text("gap_layout 12 500 0\n" + layout)
    (root / "site_c/gap.hea").write_text("gap/4 12 500 5000\ngap_layout 0\ngap_1 2000\n~ 500\ngap_2 2500\n")
    # bad records
    sig = sine_signal(500, 10.0, 0.0)
    for name in ("truncated", "extended", "no_signal"):
        write_dat(root / "site_c" / name, sig, 500)
    dat = root / "site_c/truncated.dat"
    dat.write_bytes(dat.read_bytes()[:1000])
    dat = root / "site_c/extended.dat"
    dat.write_bytes(dat.read_bytes() + b"\x00\x00" * 12)
    (root / "site_c/no_signal.dat").unlink()
    nan = sig.copy()
    nan[:, 0] = np.nan
    write_dat(root / "site_c/nan_lead", nan, 500)
    (root / "site_c/bad_header.hea").write_text("bad_header twelve 500 5000\n")
    (root / "site_c/empty.hea").write_text("empty 1 500 0\nempty.dat 16 1000/mV 16 0 0 0 0 I\n")
    (root / "site_c/empty.dat").write_bytes(b"")
    # skipped: a hidden folder
    write_dat(root / ".cache/r9", sig, 500)
    pd.DataFrame({"record_id": ["site_a/r1", "site_b/r3", "gone/r0"], "patient_id": ["p1", "p1", "p0"]}).to_csv(
        root / "patients.csv", index=False
    )
    return root


@pytest.fixture(scope="module")
def source(pool) -> WFDBFolderSource:
    return WFDBFolderSource(pool, target_fs=100)


def _position(src, record_id: str) -> int:
    return src.catalog()["record_id"].tolist().index(record_id)


def test_catalog_ids_sites_patients_and_no_labels(source):
    cat = source.catalog()
    # segments and layout headers belong to their master record; hidden folders are skipped
    assert cat["record_id"].tolist() == sorted([*GOOD, *BAD])
    row = cat.set_index("record_id")
    for record_id, (fs, site, patient) in GOOD.items():
        assert (row.at[record_id, "site"], row.at[record_id, "patient_id"]) == (site, patient)
        assert row.at[record_id, "header_fs"] == fs
        assert source.parse_codes(row.at[record_id, "codes"], record_id) == {}
    assert row.at["site_b/r3", "age"] == 47 and row.at["site_b/r3", "sex"] == 1.0
    assert np.isnan(row.at["site_a/r1", "age"]) and np.isnan(row.at["site_a/r1", "sex"])
    assert pd.isna(row.at["site_c/bad_header", "n_leads"])  # listed anyway; reading it fails
    assert len(source.vocabulary) == 71


def test_dat_and_mat_contents(source):
    for record_id in ("site_a/r1", "site_a/deep/er/r2", "site_b/r3"):
        fs = GOOD[record_id][0]
        sig = source.read_signal(_position(source, record_id))
        assert sig.fs == fs and sig.data.shape == (12, 10 * fs) and set(sig.units) == {"mV"}
        np.testing.assert_allclose(sig.data, sine_signal(fs, 10.0, _phase(record_id)).T, atol=0.6e-3)


def test_multisegment_record_is_joined(source):
    sig = source.read_signal(_position(source, "site_b/multi"))
    assert sig.fs == 500 and sig.data.shape == (12, 5000) and sig.leads[3] == "aVR"
    np.testing.assert_allclose(sig.data, sine_signal(500, 10.0, _phase("site_b/multi")).T, atol=0.6e-3)
    gap = source.read_signal(_position(source, "site_c/gap"))
    assert gap.data.shape == (12, 5000)
    assert np.isnan(gap.data[:, 2000:2500]).all() and not np.isnan(gap.data[:, :2000]).any()


@pytest.mark.parametrize("record_id", ["site_c/truncated", "site_c/extended", "site_c/no_signal", "site_c/bad_header"])
def test_bad_records_raise_reasons_naming_the_file(source, record_id):
    with pytest.raises(RecordReadError) as info:
        source.read_signal(_position(source, record_id))
    assert info.value.reason == BAD[record_id] and record_id.split("/")[1] in info.value.detail


def test_missing_multisegment_part_is_missing_file(tmp_path):
    write_dat(tmp_path / "m_1", sine_signal(500, 2.0, 0.0), 500)
    (tmp_path / "m.hea").write_text("m/2 12 500 2000\nm_1 1000\nm_2 1000\n")
    with pytest.raises(RecordReadError) as info:
        read_wfdb_record(tmp_path / "m")
    assert info.value.reason == "missing_file" and "m_2" in info.value.detail


def test_patients_csv_problems_name_the_file(tmp_path):
    write_dat(tmp_path / "a" / "r1", sine_signal(500, 1.0, 0.0), 500)
    (tmp_path / "patients.csv").write_text("record,patient\na/r1,p\n")
    with pytest.raises(ValueError, match=r"patients\.csv: missing column"):
        WFDBFolderSource(tmp_path)
    (tmp_path / "patients.csv").write_text("record_id,patient_id\na/r1,p\na/r1,q\n")
    with pytest.raises(ValueError, match=r"patients\.csv: duplicate record_id.*a/r1"):
        WFDBFolderSource(tmp_path)


def test_wrong_root_empty_folder_and_duplicate_ids(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        WFDBFolderSource(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no WFDB header"):
        WFDBFolderSource(tmp_path / "empty")
    write_dat(tmp_path / "dup" / "x" / "r", sine_signal(500, 1.0, 0.0), 500)
    (tmp_path / "dup" / "x" / "r.HEA").write_text((tmp_path / "dup" / "x" / "r.hea").read_text())
    with pytest.raises(ValueError, match="duplicate record id 'x/r'"):
        WFDBFolderSource(tmp_path / "dup")


def test_registered_and_picklable(pool):
    src = open_source("wfdb", pool, target_fs=100, resolution="auto")
    assert isinstance(src, WFDBFolderSource)
    clone = pickle.loads(pickle.dumps(src))
    position = _position(src, "site_b/multi")
    np.testing.assert_array_equal(clone.read_signal(position).data, src.read_signal(position).data)


def test_curation_end_to_end(tmp_path, pool):
    cfg = CurateConfig(n_workers=1, external_sites=("site_b",))
    summary = curate("wfdb", pool, tmp_path / "store", cfg, seed=3, progress=False)
    records = pd.read_parquet(tmp_path / "store" / "records.parquet")
    assert records["record_id"].tolist() == sorted(GOOD)
    y = records[[c for c in records.columns if c.startswith("y_")]]
    assert y.shape[1] == 71 and int(y.to_numpy().sum()) == 0  # no labels
    # patient p1 has records at site_a and site_b (external): both go to external
    split = records.set_index("record_id")["split"]
    assert split["site_a/r1"] == split["site_b/r3"] == split["site_b/multi"] == "external"
    assert records.groupby("patient_id")["split"].nunique().max() == 1
    excluded = pd.read_parquet(tmp_path / "store" / "excluded.parquet")
    dropped = excluded[excluded["action"] == "excluded"]
    assert dict(zip(dropped["record_id"], dropped["reason"])) == BAD
    assert summary["n_kept"] == len(GOOD)
    signals = np.load(tmp_path / "store" / "signals.npy", mmap_mode="r")
    i = records.index[records["record_id"] == "site_b/multi"][0]
    expected = sine_signal(100, 10.0, _phase("site_b/multi")).T  # (12, 1000) at the store's 100 Hz
    np.testing.assert_allclose(signals[i][:, 50:-50], expected[:, 50:-50], atol=5e-3)


def test_reads_the_simulated_cohort_like_the_ptbxl_reader(simulated_cohort):
    """The simulated cohort's records500 folder, read as a plain WFDB pool, gives PTB-XL's signals."""
    raw = simulated_cohort / "raw" / "downstream"
    pool = WFDBFolderSource(raw / "records500")
    ptbxl = open_source("ptbxl", raw, resolution="records500")
    catalog = pool.catalog()
    assert len(catalog) == len(ptbxl.catalog()) and (catalog["codes"].map(len) == 0).all()
    by_name = {Path(r).name: i for i, r in enumerate(catalog["record_id"])}
    for position in (0, len(ptbxl.catalog()) - 1):
        name = Path(ptbxl.record_path(position)).name
        a, b = pool.read_signal(by_name[name]), ptbxl.read_signal(position)
        assert a.fs == b.fs == 500 and a.leads == b.leads
        np.testing.assert_array_equal(a.data, b.data)
