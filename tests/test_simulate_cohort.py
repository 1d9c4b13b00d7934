"""The written world: one PTB-XL-format folder per corpus (layout, tables, WFDB records, folds), rare
sets, disjoint ids, determinism."""

import ast
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgstudy import config
from ecgstudy.simulate import SimulateConfig, write_cohort
from ecgstudy.simulate.conditions import RARE_CODES
from ecgstudy.simulate.writer import write_wfdb

from _world import tiny_sizes


def _sim(sizes: dict, **values) -> SimulateConfig:
    return config.from_dict(SimulateConfig, {"sizes": sizes, "workers": 1, **values}, "simulate")


RARE = ("CARCINOID", "BRUGADA", "ARVC")
# downstream: 32 records of 24 patients (ecg_id 13..44 after the foundation's 12)
TINY = _sim({**tiny_sizes(12, 32, 6), "downstream": {"patients": 24, "records": 32}},
            rare={"codes": list(RARE), "n_cases": 3, "n_controls": 5})
STANDARD_LEADS = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return write_cohort(TINY, tmp_path_factory.mktemp("sim") / "raw", seed=11)


@pytest.fixture(scope="module")
def cohort(world) -> Path:
    """The downstream corpus (PTB-XL-like)."""
    return world / "downstream"


def _hashes(root: Path) -> dict[str, str]:
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_layout_and_database_columns(cohort):
    tables = ("ptbxl_database.csv", "scp_statements.csv", "ground_truth.parquet", "signature_masks.parquet")
    for name in (*tables, "simulation.json"):
        assert (cohort / name).is_file(), name
    db = pd.read_csv(cohort / "ptbxl_database.csv", index_col="ecg_id")
    assert len(db) == 32 and db.index.tolist() == list(range(13, 45))
    columns = ("patient_id", "age", "sex", "site", "device", "recording_date", "scp_codes", "heart_axis", "strat_fold")
    for col in (*columns, "filename_lr", "filename_hr"):
        assert col in db.columns, col
    assert db.patient_id.nunique() == 24 and db.patient_id.dtype == float
    assert set(db.sex) <= {0, 1} and db.strat_fold.between(1, 10).all()
    assert db.groupby("patient_id").strat_fold.nunique().max() == 1  # folds respect patients
    assert db.filename_hr.iloc[0] == "records500/00000/00013_hr"
    vocab = set(pd.read_csv(cohort / "scp_statements.csv", index_col=0).index)
    assert len(vocab) == 71
    for codes in db.scp_codes:
        parsed = ast.literal_eval(codes)
        assert isinstance(parsed, dict) and parsed and set(parsed) <= vocab
        assert all(0.0 <= v <= 100.0 for v in parsed.values())
    assert not any(p.name.startswith(".") for p in cohort.parent.parent.iterdir())  # no temporary folder left


def test_wfdb_records_read_back_with_identities(cohort):
    db = pd.read_csv(cohort / "ptbxl_database.csv", index_col="ecg_id")
    for ecg_id in (13, 17, 44):
        for col, fs, n in (("filename_hr", 500, 5000), ("filename_lr", 100, 1000)):
            record = wfdb.rdrecord(str(cohort / db.loc[ecg_id, col]), physical=False)
            assert record.fs == fs and record.sig_len == n and record.n_sig == 12
            assert record.sig_name == ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
            assert record.units == ["mV"] * 12 and record.adc_gain == [1000.0] * 12 and record.baseline == [0] * 12
            assert record.fmt == ["16"] * 12
            d = record.d_signal.astype(int).T
            assert np.array_equal(d[2], d[1] - d[0])
            assert np.array_equal(2 * d[3], -(d[0] + d[1]))
            assert np.array_equal(2 * d[4], 2 * d[0] - d[1])
            assert np.array_equal(2 * d[5], 2 * d[1] - d[0])
        hi, _ = wfdb.rdsamp(str(cohort / db.loc[ecg_id, "filename_hr"]))
        lo, _ = wfdb.rdsamp(str(cohort / db.loc[ecg_id, "filename_lr"]))
        # the 100 Hz copy is the anti-aliased 500 Hz record: close to it at the shared instants
        assert np.corrcoef(hi[::5, 1], lo[:, 1])[0, 1] > 0.9


def test_ground_truth_and_masks(cohort):
    gt = pd.read_parquet(cohort / "ground_truth.parquet")
    assert gt.ecg_id.tolist() == list(range(13, 45))
    for col in ("true_scp_codes", "hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "axis_deg", "rhythm"):
        assert col in gt.columns
    assert gt.hr_bpm.between(30, 200).all() and gt.qrs_ms.between(60, 220).all()
    masks = pd.read_parquet(cohort / "signature_masks.parquet")
    assert list(masks.columns) == ["ecg_id", "code", "lead", "start_s", "end_s"]
    assert set(masks.lead) <= STANDARD_LEADS
    assert (masks.start_s < masks.end_s).all() and masks.start_s.ge(0).all() and masks.end_s.le(10).all()
    true = {r.ecg_id: set(json.loads(r.true_scp_codes)) for r in gt.itertuples()}
    assert all(code in true[e] for e, code in zip(masks.ecg_id, masks.code))


def test_reported_labels_come_from_true_ones(cohort):
    db = pd.read_csv(cohort / "ptbxl_database.csv", index_col="ecg_id")
    gt = pd.read_parquet(cohort / "ground_truth.parquet").set_index("ecg_id")
    agree = 0
    for ecg_id, codes in db.scp_codes.items():
        reported = set(ast.literal_eval(codes))
        true = set(json.loads(gt.loc[ecg_id, "true_scp_codes"]))
        agree += reported == true
    assert agree >= len(db) // 2  # most records are reported as they are; the annotator errs on a few


def test_corpora_are_disjoint_and_described(world):
    info = json.loads((world / "world.json").read_text())
    assert [(c["name"], c["role"], c["n_records"]) for c in info["corpora"]] == [
        ("foundation", "foundation", 12), ("downstream", "downstream", 32), ("external", "external", 6)]
    seen_patients, seen_records, seen_sites = set(), set(), set()
    for name in ("foundation", "downstream", "external", "rare"):
        db = pd.read_csv(world / name / "ptbxl_database.csv", index_col="ecg_id")
        patients, records, sites = set(db.patient_id), set(db.index), set(db.site)
        assert not patients & seen_patients and not records & seen_records, name
        if name != "rare":  # the rare sets come from the downstream clinics
            assert not sites & seen_sites, name
        seen_patients |= patients
        seen_records |= records
        seen_sites |= sites
    external = json.loads((world / "external" / "simulation.json").read_text())
    assert external["role"] == "external" and external["external_sites"] == [5]
    assert json.loads((world / "downstream" / "simulation.json").read_text())["external_sites"] == []
    rare_sites = set(pd.read_csv(world / "rare" / "ptbxl_database.csv").site)
    assert rare_sites <= {3.0, 4.0}  # the downstream corpus's two clinics


def test_sizes_that_cannot_be_met_and_bad_worlds_fail_naming_the_corpus():
    with pytest.raises(config.ConfigError, match=r"corpus 'external'.*cannot be met"):
        _sim({**tiny_sizes(12, 32, 6), "external": {"patients": 2, "records": 20}})  # max 3 records/patient
    with pytest.raises(config.ConfigError, match=r"missing \['external'\]"):
        _sim({k: v for k, v in tiny_sizes(12, 32, 6).items() if k != "external"})
    with pytest.raises(config.ConfigError, match="exactly one 'foundation' corpus"):
        config.from_dict(SimulateConfig, {"corpora": [{"name": "downstream", "role": "downstream"}],
                                          "sizes": {"downstream": {"patients": 3, "records": 3}}}, "simulate")
    with pytest.raises(config.ConfigError, match="rare.corpus"):
        _sim(tiny_sizes(12, 32, 6), rare={"corpus": "foundation"})


def test_rare_sets(world, cohort):
    rare = world / "rare"
    db = pd.read_csv(rare / "ptbxl_database.csv", index_col="ecg_id")
    assert db.case_control_set.value_counts().to_dict() == dict.fromkeys(RARE, 8)
    for code in RARE:
        part = db[db.case_control_set == code]
        cases = part.scp_codes.map(lambda s, c=code: c in ast.literal_eval(s))
        assert cases.sum() == 3
    assert not set(db.patient_id) & set(pd.read_csv(cohort / "ptbxl_database.csv").patient_id)
    statements = pd.read_csv(rare / "scp_statements.csv", index_col=0)
    assert set(RARE_CODES) <= set(statements.index) and len(statements) == 71 + len(RARE_CODES)
    assert (rare / db.filename_hr.iloc[0]).with_suffix(".dat").is_file()
    truth = pd.read_parquet(rare / "ground_truth.parquet")
    assert truth.ecg_id.tolist() == db.index.tolist()
    by_id = truth.set_index("ecg_id")
    for ecg_id, row in db.iterrows():  # cases carry the rare code in their truth, controls do not
        assert (row.case_control_set in json.loads(by_id.true_scp_codes[ecg_id])) == (
            row.case_control_set in ast.literal_eval(row.scp_codes)
        )
        expression = json.loads(by_id.ecg_expression[ecg_id])  # what the ECG shows, kept apart
        assert set(expression) <= set(json.loads(by_id.true_scp_codes[ecg_id]))
        assert not expression or row.case_control_set in ast.literal_eval(row.scp_codes)


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    tiny = _sim(tiny_sizes(6, 12, 3), rare={"codes": ["BRUGADA"], "n_cases": 2, "n_controls": 2})
    a = write_cohort(tiny, tmp_path / "a", seed=5)
    b = write_cohort(SimulateConfig(**{**tiny.__dict__, "workers": 2}), tmp_path / "b", seed=5)
    c = write_cohort(tiny, tmp_path / "c", seed=6)
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    assert len(ha) > 120 and ha == hb
    assert ha != hc


def test_refuses_to_overwrite_unless_asked(tmp_path):
    tiny = _sim(tiny_sizes(1, 2, 1), rare={"codes": []})
    out = tmp_path / "raw"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        write_cohort(tiny, out, seed=1)
    write_cohort(tiny, out, seed=1, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "downstream" / "ptbxl_database.csv").is_file()
    assert not (out / "rare").exists()


def test_fast_writer_matches_wfdb_wrsamp_bytes(tmp_path):
    counts = (2 * np.random.default_rng(0).integers(-3000, 3000, size=(12, 1000))).astype(np.int32)
    (tmp_path / "fast").mkdir()
    (tmp_path / "ref").mkdir()
    write_wfdb(tmp_path / "fast" / "00007_lr", counts, 100)
    write_wfdb(tmp_path / "ref" / "00007_lr", counts, 100, use_wfdb=True)
    for ext in (".hea", ".dat"):
        assert (tmp_path / "fast" / f"00007_lr{ext}").read_bytes() == (tmp_path / "ref" / f"00007_lr{ext}").read_bytes()


def test_config_section_parses_nested_sites_and_rejects_bad_values():
    corpora = [{"name": "foundation", "role": "foundation", "sites": [{"name": "f"}]},
               {"name": "downstream", "role": "downstream",
                "sites": [{"name": "x", "native_fs": 1000, "prevalence": {"AFIB": 2}}]},
               {"name": "external", "role": "external", "sites": [{"name": "e"}]}]
    cfg = _sim(tiny_sizes(5, 6, 2), corpora=corpora)
    assert cfg.sites[1].native_fs == 1000 and cfg.sites[1].prevalence == {"AFIB": 2.0}
    assert cfg.site_offset("external") == 2
    with pytest.raises(config.ConfigError, match="simulate.n_recods"):
        config.from_dict(SimulateConfig, {"n_recods": 3}, "simulate")
    with pytest.raises(config.ConfigError, match="lsb_uv"):
        _sim(tiny_sizes(5, 6, 2), corpora=[dict(corpora[0], sites=[{"name": "f", "lsb_uv": 3}]), *corpora[1:]])
    with pytest.raises(config.ConfigError, match="records"):
        _sim({**tiny_sizes(5, 6, 2), "downstream": {"patients": 10, "records": 5}})
    with pytest.raises(config.ConfigError, match="unknown prevalence"):
        _sim(tiny_sizes(5, 6, 2), corpora=[dict(corpora[0], sites=[{"name": "f", "prevalence": {"XYZ": 1.0}}]),
                                           *corpora[1:]])
    with pytest.raises(config.ConfigError, match="unique across corpora"):
        _sim(tiny_sizes(5, 6, 2), corpora=[corpora[0], corpora[1], dict(corpora[2], sites=[{"name": "f"}])])
    assert config.schema("simulate") is SimulateConfig
