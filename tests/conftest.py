"""Shared fixtures. PTB-XL-format folders written with wfdb.wrsamp (known sinusoid contents)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
import yaml

from ecgstudy.paths import repo_root, resource

#: Test files sharing the session fixture ``study`` (one tiny ``dvc repro``): one xdist worker runs them all.
STUDY_FILES = ("test_pipeline.py", "test_readme_reviewer.py", "test_tour.py")
#: Groups scheduled first: the two end-to-end runs, one per xdist worker.
HEAVY_GROUPS = ("study", "test_pipeline_ptbxl_profile.py")


def group_of(nodeid: str) -> str:
    """The group of a test (by node id): ``study`` for :data:`STUDY_FILES`, else its file, so that a
    module- or session-scoped fixture is built by one worker only."""
    name = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return "study" if name in STUDY_FILES else name


def pytest_collection_modifyitems(config, items):
    """The end-to-end groups first (``make test`` then starts one on each of its two workers)."""
    rank = {group: i for i, group in enumerate(HEAVY_GROUPS)}
    items.sort(key=lambda item: rank.get(group_of(item.nodeid), len(rank)))


if importlib.util.find_spec("xdist") is not None:

    def pytest_xdist_make_scheduler(config, log):
        """``pytest -n`` (``make test``): whole groups (:func:`group_of`) go to one worker, in collection
        order (with ``--no-loadscope-reorder``)."""
        from xdist.scheduler import LoadScopeScheduling

        class GroupScheduling(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return group_of(nodeid)

        return GroupScheduling(config, log)


#: Lead names as PTB-XL spells them, in PTB-XL's (= the standard) order.
PTBXL_LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def sine_lead_params(k: int) -> tuple[float, float]:
    """(amplitude mV, frequency Hz) of standard lead k in the fixture signals."""
    return 0.3 + 0.1 * k, 1.0 + 0.5 * k


def sine_signal(fs: float, duration_s: float, phase: float) -> np.ndarray:
    """(n_samples, 12) mV: standard lead k = A_k sin(2 pi f_k t + phase)."""
    t = np.arange(int(round(fs * duration_s))) / fs
    cols = []
    for k in range(12):
        amp, freq = sine_lead_params(k)
        cols.append(amp * np.sin(2 * np.pi * freq * t + phase))
    return np.stack(cols, axis=1)


def _write(path_base: Path, signal: np.ndarray, fs: float, names: list[str]) -> None:
    path_base.parent.mkdir(parents=True, exist_ok=True)
    n = signal.shape[1]
    wfdb.wrsamp(
        path_base.name,
        fs=fs,
        units=["mV"] * n,
        sig_name=names,
        p_signal=signal,
        fmt=["16"] * n,
        adc_gain=[1000.0] * n,
        baseline=[0] * n,
        write_dir=str(path_base.parent),
    )


def write_ptbxl(root: Path, specs: list[dict], *, statements: Path | None = None, extra_statements=None) -> Path:
    """Write a PTB-XL-format folder.

    Each spec: ``ecg_id``, ``patient_id``, ``scp_codes`` (dict), ``strat_fold``, ``site``; optional
    ``duration_s`` (10), ``leads`` (names per column, PTB-XL order by default), ``order`` (column
    permutation of the standard leads), ``edit`` (callable(signal (n, 12), fs) -> signal, applied to
    both resolutions), ``write`` (False: list it in the CSV without files).
    """
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in specs:
        ecg_id = spec["ecg_id"]
        lr = f"records100/00000/{ecg_id:05d}_lr"
        hr = f"records500/00000/{ecg_id:05d}_hr"
        if spec.get("write", True):
            order = spec.get("order", list(range(12)))
            names = spec.get("leads", [PTBXL_LEADS[k] for k in order])
            for fs, rel in ((100, lr), (500, hr)):
                sig = sine_signal(fs, spec.get("duration_s", 10.0), phase=0.1 * ecg_id)
                if "edit" in spec:
                    sig = spec["edit"](sig, fs)
                _write(root / rel, sig[:, order], fs, names)
        rows.append(
            {
                "ecg_id": ecg_id,
                "patient_id": float(spec["patient_id"]),
                "age": 50 + ecg_id,
                "sex": ecg_id % 2,
                "height": np.nan,
                "weight": 70.0,
                "site": spec.get("site", 0.0),  # PTB-XL and the simulator store site indices
                "device": spec.get("device", "CS-12"),
                "recording_date": "1990-01-01 00:00:00",
                "report": "",
                "scp_codes": repr(spec["scp_codes"]) if isinstance(spec["scp_codes"], dict) else spec["scp_codes"],
                "heart_axis": "",
                "strat_fold": spec["strat_fold"],
                "filename_lr": lr,
                "filename_hr": hr,
                **spec.get("extra", {}),
            }
        )
    pd.DataFrame(rows).to_csv(root / "ptbxl_database.csv", index=False)
    table = pd.read_csv(statements or resource("ptbxl_scp_statements.csv"), index_col=0)
    if extra_statements is not None:
        table = pd.concat([table, extra_statements])
    table.to_csv(root / "scp_statements.csv")
    return root


def _flat_lead(k: int):
    def edit(sig: np.ndarray, fs: float) -> np.ndarray:
        sig = sig.copy()
        sig[:, k] = 0.0
        return sig

    return edit


def _nan_lead(k: int):
    def edit(sig: np.ndarray, fs: float) -> np.ndarray:
        sig = sig.copy()
        sig[:, k] = np.nan
        return sig

    return edit


def _clipped_lead(k: int):
    def edit(sig: np.ndarray, fs: float) -> np.ndarray:
        sig = sig.copy()
        sig[:, k] = np.clip(sig[:, k] * 20, -5.0, 5.0)  # plateaus at +-5 mV
        return sig

    return edit


def _spike(sig: np.ndarray, fs: float) -> np.ndarray:
    sig = sig.copy()
    sig[len(sig) // 2, 3] = 30.0  # 30 mV: no ECG does that
    return sig


#: 14 good records of 10 patients (patient-respecting folds; patients 7-8 at site 2, declared external in
#: simulation.json as the simulator does).
GOOD_SPECS = [
    {"ecg_id": 1, "patient_id": 1, "scp_codes": {"NORM": 100.0, "SR": 0.0}, "strat_fold": 1},
    {"ecg_id": 2, "patient_id": 1, "scp_codes": {"NORM": 80.0, "SR": 0.0}, "strat_fold": 1},
    {"ecg_id": 3, "patient_id": 2, "scp_codes": {"IMI": 50.0, "ILMI": 0.0, "SR": 0.0}, "strat_fold": 3,
     "leads": ["I", "II", "III", "avr", "avl", "avf", "V1", "V2", "V3", "V4", "V5", "V6"]},
    {"ecg_id": 4, "patient_id": 3, "scp_codes": {"CLBBB": 100.0, "AFIB": 0.0}, "strat_fold": 9,
     "order": [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]},
    {"ecg_id": 5, "patient_id": 3, "scp_codes": {"NDT": 100.0, "SR": 0.0}, "strat_fold": 9},
    {"ecg_id": 6, "patient_id": 4, "scp_codes": {"LVH": 100.0, "VCLVH": 0.0, "SR": 0.0}, "strat_fold": 10},
    {"ecg_id": 7, "patient_id": 5, "scp_codes": {"ASMI": 100.0, "PVC": 100.0, "STACH": 0.0}, "strat_fold": 10},
    {"ecg_id": 8, "patient_id": 6, "scp_codes": {"LVOLT": 100.0, "SR": 0.0}, "strat_fold": 2},
    {"ecg_id": 9, "patient_id": 6, "scp_codes": {"PACE": 100.0}, "strat_fold": 2},
    {"ecg_id": 10, "patient_id": 7, "scp_codes": {"NORM": 100.0, "SBRAD": 0.0}, "strat_fold": 4, "site": 2.0},
    {"ecg_id": 11, "patient_id": 8, "scp_codes": {"1AVB": 100.0, "SR": 0.0}, "strat_fold": 5, "site": 2.0},
    {"ecg_id": 12, "patient_id": 9, "scp_codes": {"NST_": 100.0, "SR": 0.0}, "strat_fold": 6, "site": 1.0},
    {"ecg_id": 13, "patient_id": 9, "scp_codes": {"ISC_": 100.0, "SR": 0.0}, "strat_fold": 6, "site": 1.0},
    {"ecg_id": 14, "patient_id": 10, "scp_codes": {"SR": 0.0}, "strat_fold": 7, "duration_s": 10.4},
]

#: Bad records: ecg_id -> expected exclusion reason.
BAD_EXPECTED = {
    20: "missing_file",
    21: "truncated_data",
    22: "checksum_mismatch",
    23: "header_data_mismatch",
    24: "missing_leads",  # lead V2 entirely NaN, default min_leads 12
    25: "non_finite",
    26: "flat_lead",
    27: "saturated_lead",
    28: "implausible_amplitude",
    29: "wrong_duration",
    30: "unknown_code",
    31: "bad_labels",
}

BAD_SPECS = [
    {"ecg_id": 20, "patient_id": 20, "scp_codes": {"NORM": 100.0}, "strat_fold": 1, "write": False},
    {"ecg_id": 21, "patient_id": 21, "scp_codes": {"NORM": 100.0}, "strat_fold": 1},
    {"ecg_id": 22, "patient_id": 22, "scp_codes": {"NORM": 100.0}, "strat_fold": 1},
    {"ecg_id": 23, "patient_id": 23, "scp_codes": {"NORM": 100.0}, "strat_fold": 1},
    {"ecg_id": 24, "patient_id": 24, "scp_codes": {"NORM": 100.0}, "strat_fold": 1, "edit": _nan_lead(7)},
    {"ecg_id": 25, "patient_id": 25, "scp_codes": {"NORM": 100.0}, "strat_fold": 1,
     "edit": lambda s, fs: np.where(np.arange(len(s))[:, None] == 7, np.nan, s)},
    {"ecg_id": 26, "patient_id": 26, "scp_codes": {"NORM": 100.0}, "strat_fold": 1, "edit": _flat_lead(2)},
    {"ecg_id": 27, "patient_id": 27, "scp_codes": {"NORM": 100.0}, "strat_fold": 1, "edit": _clipped_lead(0)},
    {"ecg_id": 28, "patient_id": 28, "scp_codes": {"NORM": 100.0}, "strat_fold": 1, "edit": _spike},
    {"ecg_id": 29, "patient_id": 29, "scp_codes": {"NORM": 100.0}, "strat_fold": 1, "duration_s": 5.0},
    {"ecg_id": 30, "patient_id": 30, "scp_codes": {"NORM": 100.0, "NOTACODE": 50.0}, "strat_fold": 1},
    {"ecg_id": 31, "patient_id": 31, "scp_codes": "{'NORM': 100.0", "strat_fold": 1},
]


def _damage(root: Path) -> None:
    """Truncate, corrupt and extend the .dat files of records 21-23 (both resolutions)."""
    for rel in ("records100/00000/{:05d}_lr.dat", "records500/00000/{:05d}_hr.dat"):
        p21, p22, p23 = (root / rel.format(i) for i in (21, 22, 23))
        p21.write_bytes(p21.read_bytes()[: p21.stat().st_size // 2])
        data = bytearray(p22.read_bytes())
        data[100:104] = b"\x11\x22\x33\x44"
        p22.write_bytes(bytes(data))
        p23.write_bytes(p23.read_bytes() + b"\x00\x00" * 24)


@pytest.fixture(scope="session")
def ptbxl_dir(tmp_path_factory) -> Path:
    """PTB-XL-format folder: 14 good records (GOOD_SPECS), ground_truth.parquet, signature_masks.parquet."""
    root = write_ptbxl(tmp_path_factory.mktemp("ptbxl") / "ptbxl", GOOD_SPECS)
    ids = [s["ecg_id"] for s in GOOD_SPECS]
    pd.DataFrame(
        {
            "ecg_id": ids,
            "true_scp_codes": [json.dumps({"NORM": 1.0}) for _ in ids],
            "hr_bpm": [60.0 + i for i in ids],
            "pr_ms": 160.0,
            "qrs_ms": 90.0,
            "qt_ms": 400.0,
            "axis_deg": 45.0,
            "rhythm": "SR",
        }
    ).to_parquet(root / "ground_truth.parquet", index=False)
    pd.DataFrame(
        {
            "ecg_id": [3, 3, 6, 999],
            "code": ["IMI", "IMI", "LVH", "NORM"],
            "lead": ["II", "AVF", "V5", "I"],
            "start_s": [1.0, 1.0, 0.0, 0.0],
            "end_s": [1.2, 1.2, 10.0, 1.0],
        }
    ).to_parquet(root / "signature_masks.parquet", index=False)
    (root / "simulation.json").write_text(json.dumps({"external_sites": [2], "sites": ["a", "b", "external"]}))
    return root


@pytest.fixture(scope="session")
def ptbxl_bad_dir(tmp_path_factory) -> Path:
    """GOOD_SPECS plus one record per kind of bad input (BAD_SPECS, expected reasons BAD_EXPECTED)."""
    root = write_ptbxl(tmp_path_factory.mktemp("ptbxl_bad") / "ptbxl", GOOD_SPECS + BAD_SPECS)
    _damage(root)
    return root


@pytest.fixture
def ptbxl_copy(tmp_path, ptbxl_dir) -> Path:
    """A writable copy of ``ptbxl_dir`` (for tests that edit the CSV)."""
    return Path(shutil.copytree(ptbxl_dir, tmp_path / "ptbxl_copy"))


@pytest.fixture(scope="session")
def ptbxl_store(tmp_path_factory, ptbxl_bad_dir) -> Path:
    """The store curated from ``ptbxl_bad_dir`` at 100 Hz with qc.min_leads=11 (record 24 keeps a NaN V2)."""
    from ecgstudy.data.curation import CurateConfig, curate
    from ecgstudy.data.quality import QCConfig

    out = tmp_path_factory.mktemp("stores") / "ptbxl_store"
    curate("ptbxl", ptbxl_bad_dir, out, CurateConfig(qc=QCConfig(min_leads=11), n_workers=1), seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def simulated_cohort(tmp_path_factory) -> Path:
    """A small simulated world (foundation 40, downstream 70 + external 10 records, rare sets of 6 + 12)
    curated into ``<dir>/foundation``, ``<dir>/main`` (downstream + external) and ``<dir>/rare``.

    Returns the folder holding ``raw/`` (one PTB-XL-format folder per corpus) and the curated stores.
    """
    from ecgstudy import config
    from ecgstudy.data.curation import CurateConfig
    from ecgstudy.data.world import curate_world
    from ecgstudy.simulate import SimulateConfig, write_world
    from _world import tiny_sizes

    root = tmp_path_factory.mktemp("simulated_cohort")
    sim = config.from_dict(SimulateConfig, {"sizes": tiny_sizes(40, 70, 10), "rare": {"n_cases": 6, "n_controls": 12}},
                           "simulate")
    raw = write_world(sim, root / "raw", seed=7)
    curate_world(raw, root, CurateConfig(n_workers=1), seed=7, progress=False)
    return root



@pytest.fixture(scope="module")
def torch_one_thread():
    """Small models on small batches: one torch thread is as fast and immune to a busy machine.

    Module-scoped; use with ``pytestmark = pytest.mark.usefixtures("torch_one_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _merge_params(base: dict, overlay: dict) -> dict:
    out = dict(base)
    for key, value in overlay.items():
        nested = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = _merge_params(base.get(key, {}), value) if nested else value
    return out


def _study_run(cmd: list[str], cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ECGSTUDY_ROOT"}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["MPLBACKEND"] = "agg"
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")


@pytest.fixture(scope="session")
def study(tmp_path_factory) -> Path:
    """A copy of the repository (tracked + untracked-not-ignored files) with the tiny params, reproduced.

    One `dvc repro` per test session, shared by test_pipeline.py and test_tour.py (tests that change it restore it).
    """
    src = repo_root()
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=src, capture_output=True, text=True, check=True
    ).stdout.split()
    dst = tmp_path_factory.mktemp("study")
    for name in files:
        if (src / name).is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dst / name)
    params = yaml.safe_load((dst / "params.yaml").read_text())
    overlay = yaml.safe_load((src / "tests" / "params_tiny.yaml").read_text())
    (dst / "params.yaml").write_text(yaml.safe_dump(_merge_params(params, overlay), sort_keys=False))
    for metrics in (dst / "reports" / "metrics").glob("*.json"):
        metrics.unlink()  # must be regenerated by the run
    _study_run(["git", "init", "-q"], dst)
    _study_run(["git", "add", "-A"], dst)
    _study_run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], dst)
    _study_run(["dvc", "repro"], dst)
    return dst
