"""The MIMIC-IV-ECG reader: real lead order, record_list/machine_measurements joins, report rules, bad inputs."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgstudy.data.curation import CurateConfig, curate
from ecgstudy.data.labels import LabelError
from ecgstudy.data.sources import RecordReadError, open_source
from ecgstudy.data.sources.mimic import REPORT_COLUMNS, MimicSource, ReportRules

from conftest import sine_lead_params, sine_signal

#: Lead names and order of the MIMIC-IV-ECG headers (aVF before aVL).
MIMIC_LEADS = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]
#: Column k of a MIMIC record holds standard lead MIMIC_ORDER[k].
MIMIC_ORDER = [0, 1, 2, 3, 5, 4, 6, 7, 8, 9, 10, 11]

#: study_id -> (subject_id, cart_id, machine report statements or None when not in machine_measurements.csv)
STUDIES: dict[int, tuple[int, float, list[str] | None]] = {
    40689238: (10000032, 6848, ["Sinus rhythm", "Normal ECG"]),
    44458630: (10000032, 6848, ["Atrial fibrillation with rapid ventricular response",
                                "Atrial fibrillation has replaced sinus rhythm", "Abnormal ECG"]),
    45090959: (10000117, 6702, ["Sinus rhythm", "Incomplete right bundle branch block",
                                "Possible left atrial enlargement", "Borderline ECG"]),
    48446569: (10000560, 6702, ["Sinus bradycardia", "Right bundle branch block",
                                "Left anterior fascicular block", "Abnormal ECG"]),
    41234567: (10000635, np.nan, ["Sinus tachycardia with PVC(s)",
                                  "Cannot rule out Anterior infarct, age undetermined",
                                  "Inferior infarct no longer present"]),
    42222222: (10000764, 6848, ["Rhythm strip of doubtful origin"]),  # no rule recognises it
    43333333: (10000764, np.nan, None),  # listed in record_list.csv only
    47777777: (10000898, 7001, ["Atrial flutter with 2:1 A-V conduction",
                                "T wave abnormality, consider lateral ischemia", "Prolonged QT interval"]),
    46666666: (10000980, 7001, ["Sinus rhythm", "Normal ECG"]),
    49999991: (10001000, 7001, ["Sinus rhythm"]),  # no files: missing_file
    49999992: (10001001, 7001, ["Sinus rhythm"]),  # truncated .dat: truncated_data
}
EXPECTED_CODES: dict[str, dict[str, float]] = {
    "40689238": {"SR": 100.0, "NORM": 100.0},
    "44458630": {"AFIB": 100.0},  # sinus rhythm negated by "has replaced"
    "45090959": {"SR": 100.0, "IRBBB": 100.0, "LAO/LAE": 50.0},  # not CRBBB; "possible" -> 50
    "48446569": {"SBRAD": 100.0, "CRBBB": 100.0, "LAFB": 100.0},
    "41234567": {"STACH": 100.0, "PVC": 100.0, "AMI": 15.0},  # IMI negated by "no longer present"
    "42222222": {},
    "43333333": {},
    "47777777": {"AFLT": 100.0, "TAB_": 100.0, "ISCLA": 50.0, "LNGQT": 100.0},
    "46666666": {"SR": 100.0, "NORM": 100.0},
}
BAD_EXPECTED = {"49999991": "missing_file", "49999992": "truncated_data"}
SERIAL = CurateConfig(n_workers=1)


def _phase(study_id: int) -> float:
    return 0.2 + 0.001 * (study_id % 1000)


def record_rel(subject: int, study: int) -> str:
    return f"files/p{str(subject)[:4]}/p{subject}/s{study}/{study}"


def write_mimic(root: Path, studies: dict = STUDIES, *, measurements: bool = True) -> Path:
    """A MIMIC-IV-ECG folder: record_list.csv, machine_measurements.csv and WFDB records (500 Hz, 10 s)."""
    root.mkdir(parents=True, exist_ok=True)
    records, rows = [], []
    for study, (subject, cart, report) in studies.items():
        rel = record_rel(subject, study)
        records.append({"subject_id": subject, "study_id": study, "file_name": str(study),
                        "ecg_time": "2180-07-23 08:44:00", "path": rel})
        if study != 49999991:
            base = root / rel
            base.parent.mkdir(parents=True, exist_ok=True)
            sig = sine_signal(500, 10.0, _phase(study))[:, MIMIC_ORDER]
            wfdb.wrsamp(base.name, fs=500, units=["mV"] * 12, sig_name=MIMIC_LEADS, p_signal=sig, fmt=["16"] * 12,
                        adc_gain=[200.0] * 12, baseline=[0] * 12, write_dir=str(base.parent))
        if report is not None:
            row = {"subject_id": subject, "study_id": study, "cart_id": cart, "ecg_time": "2180-07-23 08:44:00"}
            row.update({col: (report[i] if i < len(report) else None) for i, col in enumerate(REPORT_COLUMNS)})
            row.update(bandwidth="0.5-150 Hz", filtering="60 Hz notch Baseline filter", rr_interval=800 + study % 7,
                       p_onset=40, p_end=150, qrs_onset=200, qrs_end=290, t_end=600, p_axis=50, qrs_axis=-10,
                       t_axis=40)
            rows.append(row)
    rows.append({**rows[0], "study_id": 40000001, "subject_id": 10009999})  # not in record_list.csv: ignored
    pd.DataFrame(records).to_csv(root / "record_list.csv", index=False)
    if measurements:
        pd.DataFrame(rows).to_csv(root / "machine_measurements.csv", index=False)
    dat = root / (record_rel(10001001, 49999992) + ".dat")
    if dat.is_file():
        dat.write_bytes(dat.read_bytes()[: dat.stat().st_size // 2])
    return root


@pytest.fixture(scope="module")
def mimic_dir(tmp_path_factory) -> Path:
    return write_mimic(tmp_path_factory.mktemp("mimic") / "mimic-iv-ecg")


@pytest.fixture(scope="module")
def store(tmp_path_factory, mimic_dir) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("mimic_store") / "store"
    return out, curate("mimic", mimic_dir, out, SERIAL, seed=1, progress=False)


@pytest.fixture
def mimic_copy(tmp_path, mimic_dir) -> Path:
    """A writable copy of the CSVs (signal files are not needed by these tests)."""
    root = tmp_path / "copy"
    root.mkdir()
    for name in ("record_list.csv", "machine_measurements.csv"):
        shutil.copy(mimic_dir / name, root / name)
    return root


# -- the reader ------------------------------------------------------------------------------------


def test_catalog_ids_sites_reports(mimic_dir):
    src = open_source("mimic", mimic_dir, target_fs=100, resolution="auto")  # curate's options are accepted
    assert isinstance(src, MimicSource) and len(src.vocabulary) == 71
    cat = src.catalog().set_index("record_id")
    assert cat.index.tolist() == [str(s) for s in STUDIES]  # record_list.csv order
    assert cat.loc["44458630", "patient_id"] == "10000032"
    assert cat.loc["40689238", "site"] == "6848" and cat.loc["41234567", "site"] == "mimic"  # cart_id, or mimic
    assert cat.loc["43333333", "site"] == "mimic" and cat.loc["43333333", "report"] == ""
    assert cat.loc["45090959", "report"] == "Sinus rhythm; Incomplete right bundle branch block; " \
                                            "Possible left atrial enlargement; Borderline ECG"
    assert cat.loc["40689238", "codes"] == ("Sinus rhythm", "Normal ECG")
    assert {"ecg_time", "rr_interval", "qrs_axis", "t_axis", "bandwidth"} <= set(cat.columns)
    assert "40000001" not in cat.index


def test_report_labels(mimic_dir):
    src = MimicSource(mimic_dir)
    cat = src.catalog().set_index("record_id")
    for record_id, expected in EXPECTED_CODES.items():
        assert src.parse_codes(cat.loc[record_id, "codes"], record_id) == expected, record_id
    assert src.parse_codes(None, "1") == {} and src.parse_codes("Sinus bradycardia", "1") == {"SBRAD": 100.0}
    with pytest.raises(LabelError, match="record 7"):
        src.parse_codes({"SR": 1}, "7")


def test_header_lead_order_is_kept_in_raw_signals(mimic_dir):
    src = MimicSource(mimic_dir)
    sig = src.read_signal(0)  # 40689238
    assert list(sig.leads) == MIMIC_LEADS and sig.leads[4:6] == ("aVF", "aVL")
    assert sig.fs == 500 and sig.data.shape == (12, 5000) and set(sig.units) == {"mV"}
    expected = sine_signal(500, 10.0, _phase(40689238)).T
    np.testing.assert_allclose(sig.data[4], expected[5], atol=2.6e-3)  # row 4 is aVF (standard lead 5); 5 uV steps
    np.testing.assert_allclose(sig.data[5], expected[4], atol=2.6e-3)


def test_bad_files_raise_reasons(mimic_dir):
    src = MimicSource(mimic_dir)
    ids = src.catalog()["record_id"].tolist()
    for record_id, reason in BAD_EXPECTED.items():
        with pytest.raises(RecordReadError) as info:
            src.read_signal(ids.index(record_id))
        assert info.value.reason == reason and record_id in info.value.detail


# -- curation end to end ---------------------------------------------------------------------------


def test_curated_signals_are_in_standard_order(store):
    out, summary = store
    records = pd.read_parquet(out / "records.parquet")
    signals = np.load(out / "signals.npy", mmap_mode="r")
    kept = [r for r in EXPECTED_CODES]
    assert records["record_id"].tolist() == kept and signals.shape == (len(kept), 12, 1000)  # 500 -> 100 Hz
    t = np.arange(1000) / 100
    core = slice(50, -50)
    for i, record_id in enumerate(kept):
        expected = np.stack([a * np.sin(2 * np.pi * f * t + _phase(int(record_id)))
                             for a, f in (sine_lead_params(k) for k in range(12))])
        np.testing.assert_allclose(signals[i][:, core], expected[:, core], atol=5e-3)  # aVL row 4, aVF row 5
    assert (records["fs"] == 500).all() and (records["duration_s"] == 10.0).all()
    assert summary["n_catalog"] == len(STUDIES) and summary["n_kept"] == len(kept)


def test_curated_exclusions_labels_and_reports(store):
    out, _ = store
    excluded = pd.read_parquet(out / "excluded.parquet")
    assert dict(zip(excluded["record_id"], excluded["reason"])) == BAD_EXPECTED
    records = pd.read_parquet(out / "records.parquet").set_index("record_id")
    y = records[[c for c in records.columns if c.startswith("y_")]]
    for record_id, codes in EXPECTED_CODES.items():
        assert {c[2:] for c in y.columns[y.loc[record_id] == 1]} == set(codes), record_id
    assert int(y["y_SR"].sum()) == 3 and int(y["y_NORM"].sum()) == 2 and int(y.to_numpy().sum()) == 18
    assert records.loc["42222222", "report"] == "Rhythm strip of doubtful origin"  # kept, unlabelled
    assert records.loc["47777777", "site"] == "7001" and records.loc["47777777", "source"] == "mimic"


def test_patients_never_straddle_splits(store):
    records = pd.read_parquet(store[0] / "records.parquet")
    assert (records.groupby("patient_id")["split"].nunique() == 1).all()
    assert records.loc[records["patient_id"] == "10000032", "record_id"].tolist() == ["40689238", "44458630"]


# -- bad folders -----------------------------------------------------------------------------------


def test_missing_machine_measurements_gives_unlabelled_records(mimic_copy, caplog):
    (mimic_copy / "machine_measurements.csv").unlink()
    with caplog.at_level(logging.WARNING, logger="ecgstudy.data.sources.mimic"):
        src = MimicSource(mimic_copy)
    assert "machine_measurements.csv not found" in caplog.text
    cat = src.catalog()
    assert (cat["site"] == "mimic").all() and (cat["report"] == "").all()
    assert all(src.parse_codes(c, r) == {} for c, r in zip(cat["codes"], cat["record_id"]))


def test_duplicate_study_ids_are_errors(mimic_copy):
    records = pd.read_csv(mimic_copy / "record_list.csv")
    pd.concat([records, records.iloc[[2]]]).to_csv(mimic_copy / "record_list.csv", index=False)
    with pytest.raises(ValueError, match=r"record_list\.csv: duplicate study_id\(s\) \[45090959\]"):
        MimicSource(mimic_copy)
    records.to_csv(mimic_copy / "record_list.csv", index=False)
    meas = pd.read_csv(mimic_copy / "machine_measurements.csv")
    pd.concat([meas, meas.iloc[[0]]]).to_csv(mimic_copy / "machine_measurements.csv", index=False)
    with pytest.raises(ValueError, match=r"machine_measurements\.csv: duplicate study_id\(s\) \[40689238\]"):
        MimicSource(mimic_copy)


def test_inconsistent_or_incomplete_tables_are_errors(mimic_copy):
    meas = pd.read_csv(mimic_copy / "machine_measurements.csv")
    meas.assign(subject_id=meas["subject_id"].where(meas["study_id"] != 48446569, 1)).to_csv(
        mimic_copy / "machine_measurements.csv", index=False
    )
    with pytest.raises(ValueError, match=r"subject_id differs from record_list\.csv for study_id\(s\) \[48446569\]"):
        MimicSource(mimic_copy)
    records = pd.read_csv(mimic_copy / "record_list.csv")
    records.drop(columns="path").to_csv(mimic_copy / "record_list.csv", index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['path'\]"):
        MimicSource(mimic_copy)
    records.assign(study_id="s1").to_csv(mimic_copy / "record_list.csv", index=False)
    with pytest.raises(ValueError, match="non-integer study_id"):
        MimicSource(mimic_copy)


def test_wrong_root_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        MimicSource(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="record_list.csv"):
        open_source("mimic", tmp_path / "empty")


def test_root_may_hold_the_release_folder(tmp_path, mimic_copy):
    shutil.copytree(mimic_copy, tmp_path / "outer" / "mimic-iv-ecg-1.0")
    assert MimicSource(tmp_path / "outer").root.name == "mimic-iv-ecg-1.0"


# -- the report rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement, codes",
    [
        ("Normal sinus rhythm", {"SR": 100.0}),
        ("Otherwise normal ECG", {"NORM": 100.0}),
        ("Abnormal ECG", {}),  # the verdict rule consumes it: never NORM
        ("Sinus rhythm with 1st degree A-V block", {"SR": 100.0, "1AVB": 100.0}),
        ("Incomplete left bundle branch block", {"ILBBB": 100.0}),
        ("RBBB with left anterior fascicular block", {"CRBBB": 100.0, "LAFB": 100.0}),
        ("Probable left ventricular hypertrophy", {"LVH": 80.0}),
        ("Minimal voltage criteria for LVH, may be normal variant", {"VCLVH": 100.0}),
        ("Anteroseptal infarct - age undetermined", {"ASMI": 100.0}),  # not also ASMI+... from "septal infarct"
        ("Inferolateral infarct", {"ILMI": 100.0}),
        ("Lateral ST-T changes may be due to myocardial ischemia", {"NST_": 100.0, "ISC_": 50.0}),
        ("Ventricular-paced rhythm", {"PACE": 100.0}),  # 'pac' inside 'paced' is not PAC
        ("Sinus rhythm with PACs", {"SR": 100.0, "PAC": 100.0}),
        ("No ST elevation", {}),
        ("ST-T changes consistent with ischemia", {"NST_": 100.0, "ISC_": 80.0}),  # this "with" is no clause break
        ("Inferior infarct, cannot be excluded", {"IMI": 100.0}),  # the cue is in another clause
        ("Inferior infarct cannot be excluded", {"IMI": 15.0}),
        ("2nd degree A-V block, Mobitz I (Wenckebach)", {"2AVB": 100.0}),
        ("Left axis deviation", {}),
        ("Something no rule knows", {}),
    ],
)
def test_rules_on_statements(statement, codes):
    assert ReportRules.load().codes([statement]) == codes


def test_rules_report_whether_a_statement_was_recognised():
    rules = ReportRules.load()
    assert rules.statement_codes("Left axis deviation") == ({}, True)
    assert rules.statement_codes("Something no rule knows") == ({}, False)
    assert rules.codes(["Possible LVH", "Left ventricular hypertrophy"]) == {"LVH": 100.0}  # highest likelihood


def test_rule_table_problems_name_the_line(tmp_path):
    path = tmp_path / "rules.csv"
    path.write_text("pattern,scp_code,note\nsinus rhythm,SR,\nmystery,NOTACODE,\n")
    with pytest.raises(ValueError, match=r"rules\.csv: line 3: code 'NOTACODE' is not in the statement vocabulary"):
        ReportRules.load(path)
    path.write_text("pattern,scp_code,note\n(unclosed,SR,\n")
    with pytest.raises(ValueError, match=r"line 2: bad pattern"):
        ReportRules.load(path)
    path.write_text("regex,code\nx,SR\n")
    with pytest.raises(ValueError, match="missing column"):
        ReportRules.load(path)
    path.write_text("pattern,scp_code,note\nsinus rhythm,SR,\n")
    assert ReportRules.load(path).codes(["Sinus rhythm", "Normal ECG"]) == {"SR": 100.0}


def test_custom_rule_table_is_used(tmp_path, mimic_copy):
    path = tmp_path / "rules.csv"
    path.write_text("pattern,scp_code,note\ndoubtful origin,SVARR,test rule\n")
    src = MimicSource(mimic_copy, rules=path)
    cat = src.catalog().set_index("record_id")
    assert src.parse_codes(cat.loc["42222222", "codes"], "42222222") == {"SVARR": 100.0}
    assert src.parse_codes(cat.loc["40689238", "codes"], "40689238") == {}
