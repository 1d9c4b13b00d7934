"""``predict`` / ``embed`` / ``describe`` end to end: a classifier fine-tuned by the stage's own code on the
simulated cohort, applied to the raw folder it was curated from and to WFDB records written here (a long
1000 Hz record with extra Frank leads, a 2-lead MLII + V5 record, a short one and a broken one)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from _wfdb_records import write_dat

from ecgstudy import cli
from ecgstudy.apply.cards import card_paths, describe
from ecgstudy.apply.embed import embed_folder, write_embeddings
from ecgstudy.apply.inputs import ApplyOptions
from ecgstudy.apply.predict import predict_folder
from ecgstudy.data.labels import task_labels
from ecgstudy.data.store import ECGDataset, Store
from ecgstudy.engine.probes import embed_dataset
from ecgstudy.engine.train import TrainConfig
from ecgstudy.models import build_encoder
from ecgstudy.models.checkpoint import CheckpointError, load_encoder, preprocessing_spec, read_checkpoint, save_checkpoint
from ecgstudy.stages.finetune import FinetuneConfig, train_all

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FAST = TrainConfig(epochs=1, min_steps=3, batch_size=16, bf16=False, progress=False, max_evals=1, patience=0)
PROBE = TrainConfig(epochs=3, min_steps=5, batch_size=64, bf16=False, progress=False)


@pytest.fixture(scope="module")
def trained(simulated_cohort, tmp_path_factory):
    """An encoder checkpoint and two classifiers trained by ``finetune.train_all``: whole records (scratch) and
    the benchmark's sliding windows (linear probe, 5 s windows every 2.5 s, mean)."""
    root = tmp_path_factory.mktemp("apply")
    store_dir = simulated_cohort / "main"
    store = Store(store_dir)
    torch.manual_seed(0)
    encoder = root / "encoder.pt"
    save_checkpoint(encoder, build_encoder("net1d", "tiny"), config={"objective": "none", "splits": ["train"]},
                    preprocessing=preprocessing_spec(store.meta), labels=[], extra={"n_train": 0})
    runs = {}
    for name, extra in (("whole", {"strategies": ["scratch"]}),
                        ("windows", {"strategies": ["linear_probe"], "eval_window_s": 5.0, "eval_stride_s": 2.5,
                                     "eval_aggregate": "mean"})):
        cfg = FinetuneConfig(fractions=[1.0], repeats=1, min_positives=2, eval_splits=["test"], optim=FAST, probe=PROBE, **extra)
        result = train_all(cfg, store_dir, encoder, root / name, seed=0)
        runs[name] = (cfg, result, root / name / f"{cfg.strategies[0]}_1.pt")
    return {"root": root, "store": store, "encoder": encoder, "runs": runs, "raw": simulated_cohort / "raw" / "downstream"}


def _test_records(store: Store, cfg: FinetuneConfig) -> np.ndarray:
    tl = task_labels(store, cfg.task, cfg.min_positives, within=np.asarray(store.indices("train")))
    rows = [i for i in store.indices("test") if tl.keep[i]]
    return store.records["record_id"].astype(str).to_numpy()[rows]


@pytest.mark.parametrize("protocol", ["whole", "windows"])
def test_predict_reproduces_the_finetune_test_probabilities(trained, protocol):
    cfg, result, checkpoint = trained["runs"][protocol]
    out = predict_folder(checkpoint, "simulated", trained["raw"], progress=False)
    table = out.table.set_index("record_id")
    ids = _test_records(trained["store"], cfg)
    reported = result.scores.get(cfg.strategies[0], "1", "r0", "test")  # (N_test, L), the stage's own numbers
    assert len(ids) == len(reported) >= 5 and reported.shape[1] >= 2
    mine = table.loc[ids, [f"p_{c}" for c in result.labels]].to_numpy()
    np.testing.assert_allclose(mine, reported, rtol=0, atol=2e-6)
    assert (table.loc[ids, "n_windows"] == (1 if protocol == "whole" else 3)).all()
    assert len(out.table) == len(pd.read_csv(trained["raw"] / "ptbxl_database.csv"))  # every catalog record has a row


def test_thresholds_chosen_on_val_are_stored_and_give_the_decisions(trained):
    cfg, result, checkpoint = trained["runs"]["whole"]
    stored = read_checkpoint(checkpoint)["extra"]["thresholds"]
    assert stored["rule"] == "youden" and stored["chosen_on"] == "val"
    assert list(stored["values"]) == result.labels
    out = predict_folder(checkpoint, "simulated", trained["raw"], progress=False).table
    ok = out[out["status"] != "excluded"]
    for label, t in stored["values"].items():
        assert (ok[f"decision_{label}"].astype(int) == (ok[f"p_{label}"] >= t).astype(int)).all()
    ops = result.decisions
    assert set(ops["split"]) == {"test"} and set(ops["label"]) == set(result.labels)
    assert np.allclose(ops["threshold"], [stored["values"][c] for c in ops["label"]])
    assert ((ops["ece"] >= 0) & (ops["ece"] <= 1)).all()
    assert set(result.calibration.columns) >= {"model", "split", "label", "bin_low", "n", "mean_predicted", "observed"}


def test_every_classifier_gets_a_model_card_that_describe_prints(trained, capsys):
    cfg, result, checkpoint = trained["runs"]["windows"]
    json_path, md_path = card_paths(checkpoint)
    assert json_path.is_file() and md_path.is_file()
    text = md_path.read_text()
    for needed in ("## Model", "parameters", "## Preprocessing", "## Labels", "## Training data and splits",
                   "## Decision thresholds", "## Evaluation: test split", "macro AUROC", "## Intended use",
                   "## Known limits", "simulated cohort", "5 s windows every 2.5 s"):
        assert needed in text, needed
    assert cli.main(["describe", str(checkpoint)]) == 0
    assert capsys.readouterr().out == text
    assert "No card was written" in describe(trained["encoder"])  # a checkpoint without a card


@pytest.fixture(scope="module")
def wfdb_folder(tmp_path_factory):
    """WFDB records as real databases have them: 38.4 s at 1000 Hz with Frank leads vx, vy, vz (PTB
    Diagnostic layout), 30 s of MLII + V5 at 360 Hz (MIT-BIH layout), a 3 s record, and a header without data."""
    root = tmp_path_factory.mktemp("wfdb_apply")
    rng = np.random.default_rng(3)

    def ecg(fs, seconds, n):
        t = np.arange(int(fs * seconds)) / fs
        beats = np.exp(-(((t * 1.2) % 1.0 - 0.5) ** 2) / 0.001)
        return np.stack([beats * (0.5 + 0.1 * k) + rng.normal(0, 0.02, t.size) for k in range(n)], axis=1)

    ptb = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6", "vx", "vy", "vz"]
    write_dat(root / "ptb" / "s0010_re", ecg(1000, 38.4, 15), 1000, ptb)
    write_dat(root / "mitdb" / "100", ecg(360, 30.0, 2), 360, ["MLII", "V5"])
    write_dat(root / "short", ecg(500, 3.0, 12), 500, ptb[:12])
    write_dat(root / "broken", ecg(500, 10.0, 12), 500, ptb[:12])
    (root / "broken.dat").unlink()
    return root


def test_predict_handles_long_reduced_lead_short_and_broken_records(trained, wfdb_folder):
    checkpoint = trained["runs"]["whole"][2]
    options = ApplyOptions(min_leads=2, lead_aliases={"MLII": "II"})
    table = predict_folder(checkpoint, "wfdb", wfdb_folder, options=options, progress=False).table.set_index("record_id")
    labels = [c for c in table.columns if c.startswith("p_")]
    long = table.loc["ptb/s0010_re"]
    assert long["status"] == "ok" and long["n_leads"] == 12 and long["fs"] == 1000
    assert long["n_windows"] == 4  # 38.4 s: three 10 s windows + one ending at the record's end
    mit = table.loc["mitdb/100"]
    assert mit["status"] == "ok" and mit["leads_present"] == "II,V5" and mit["n_windows"] == 3
    assert table.loc["short", "status"] == "excluded" and table.loc["short", "reason"] == "too_short"
    assert table.loc["broken", "status"] == "excluded" and table.loc["broken", "reason"] == "missing_file"
    assert table.loc[["ptb/s0010_re", "mitdb/100"], labels].notna().all().all()
    assert table.loc[["short", "broken"], labels].isna().all().all()
    # without the declared alias the MIT-BIH record has one lead: below min_leads, listed with its reason
    plain = predict_folder(checkpoint, "wfdb", wfdb_folder, options=dataclasses.replace(options, lead_aliases={}),
                           progress=False).table.set_index("record_id")
    assert plain.loc["mitdb/100", "reason"] == "missing_leads" and "1 lead(s) present" in plain.loc["mitdb/100", "detail"]


def test_long_record_probability_aggregates_its_windows(trained, wfdb_folder):
    checkpoint = trained["runs"]["whole"][2]
    mean = predict_folder(checkpoint, "wfdb", wfdb_folder, aggregate="mean", progress=False).table.set_index("record_id")
    best = predict_folder(checkpoint, "wfdb", wfdb_folder, aggregate="max", progress=False).table.set_index("record_id")
    labels = [c for c in mean.columns if c.startswith("p_")]
    assert (best.loc["ptb/s0010_re", labels] >= mean.loc["ptb/s0010_re", labels] - 1e-12).all()


def test_embed_matches_the_store_embeddings_and_lists_every_record(trained, tmp_path):
    store = trained["store"]
    table, z = embed_folder(trained["encoder"], "simulated", trained["raw"], progress=False)
    encoder, _ = load_encoder(trained["encoder"])
    assert z.shape == (len(table), encoder.embed_dim)
    rows = np.flatnonzero(store.records["corpus"].astype(str).to_numpy() == "downstream")  # the folder embedded
    ids = store.records["record_id"].astype(str).to_numpy()[rows]
    assert len(rows) >= 50
    expected = embed_dataset(encoder, ECGDataset(store, rows), bf16=False)
    mine = table.assign(row=np.arange(len(table))).set_index("record_id").loc[ids, "row"].to_numpy()
    np.testing.assert_allclose(z[mine], expected, atol=2e-5)
    excluded = table["status"] == "excluded"
    assert np.isnan(z[excluded.to_numpy()]).all() and not np.isnan(z[~excluded.to_numpy()]).any()
    npy, ids_csv = write_embeddings(table, z, tmp_path / "z.npy")
    assert np.load(npy).shape == z.shape and len(pd.read_csv(ids_csv)) == len(table)
    parquet = pd.read_parquet(write_embeddings(table, z, tmp_path / "z.parquet")[0])
    assert list(parquet.columns[-2:]) == [f"e_{encoder.embed_dim - 2}", f"e_{encoder.embed_dim - 1}"]


def test_wrong_kinds_of_checkpoint_fail_naming_the_file_and_the_right_command(trained, tmp_path):
    classifier = trained["runs"]["whole"][2]
    with pytest.raises(CheckpointError, match="encoder.pt.*ecgstudy embed"):
        predict_folder(trained["encoder"], "simulated", trained["raw"], progress=False)
    with pytest.raises(CheckpointError, match="scratch_1.pt.*classifier.*ecgstudy predict"):
        embed_folder(classifier, "simulated", trained["raw"], progress=False)
    _, z = embed_folder(classifier, "simulated", trained["raw"], allow_classifier=True, progress=False)
    assert np.isfinite(z).any()
    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pt"):
        predict_folder(not_a_checkpoint, "simulated", trained["raw"], progress=False)
    # a spec without the normalisation cannot be applied to raw records
    payload = torch.load(classifier, weights_only=True)
    del payload["preprocessing"]["normalise"]
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="old.pt.*normalise"):
        predict_folder(tmp_path / "old.pt", "simulated", trained["raw"], progress=False)


def test_cli_predict_writes_one_row_per_record_and_fails_when_nothing_is_readable(trained, wfdb_folder, tmp_path,
                                                                                  capsys):
    checkpoint = trained["runs"]["whole"][2]
    out = tmp_path / "pred.csv"
    code = cli.main(["predict", "--checkpoint", str(checkpoint), "--source", "wfdb", "--root", str(wfdb_folder),
                     "--out", str(out), "--min-leads", "2", "--lead-alias", "MLII=II", "--quiet"])
    assert code == 0
    table = pd.read_csv(out)
    assert len(table) == 4 and (table["status"] == "ok").sum() == 2
    assert "excluded too_short: 1" in capsys.readouterr().out
    only_broken = tmp_path / "broken_only"
    only_broken.mkdir()
    for name in ("broken.hea",):
        (only_broken / name).write_text((wfdb_folder / name).read_text())
    code = cli.main(["predict", "--checkpoint", str(checkpoint), "--source", "wfdb", "--root", str(only_broken),
                     "--out", str(tmp_path / "none.parquet"), "--quiet"])
    assert code == 1 and "no readable record" in capsys.readouterr().err
    assert pd.read_parquet(tmp_path / "none.parquet")["reason"].tolist() == ["missing_file"]
    code = cli.main(["predict", "--checkpoint", str(checkpoint), "--source", "wfdb", "--root", str(tmp_path / "nowhere"),
                     "--out", str(tmp_path / "x.csv"), "--quiet"])
    assert code == 2 and "nowhere" in capsys.readouterr().err
