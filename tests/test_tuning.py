"""Equal tuning: the search record, patient folds and the cross-validated probe weight decay."""

import numpy as np
import pytest

from ecgstudy.engine.train import TrainConfig
from ecgstudy.engine.tuning import Search, cv_probe_weight_decay, patient_folds, repeat_seed

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_search_picks_the_first_best_value_and_records_everything():
    search = Search("lr", [1e-3, 3e-3, 1e-2], "validation macro AUROC")
    for score, epoch in ((0.7, 3), (0.8, 5), (0.8, 2)):
        search.add(score, best_epoch=epoch)
    assert search.chosen == 3e-3 and search.best_index == 1  # tie with 1e-2: the first in grid order wins
    record = search.record()
    assert record["scores"] == [0.7, 0.8, 0.8] and record["details"][1]["best_epoch"] == 5
    nan = Search("weight_decay", [0.1, 1.0], "cv")
    nan.add(float("nan"))
    nan.add(0.6)
    assert nan.chosen == 1.0 and nan.record()["scores"] == [None, 0.6]
    with pytest.raises(ValueError, match="more scores"):
        nan.add(0.5)
    assert repeat_seed(7, 0) == 7 and repeat_seed(7, 2) == 9
    with pytest.raises(ValueError):
        repeat_seed(7, -1)


def test_patient_folds_keep_patients_whole_and_spread_the_cases():
    patients = np.repeat([f"p{i}" for i in range(30)], 2)
    positive = np.repeat(np.arange(30) < 9, 2)  # 9 case patients
    folds = patient_folds(patients, positive, 3, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(60))
    for fold in folds:
        others = np.setdiff1d(np.arange(60), fold)
        assert not set(patients[fold]) & set(patients[others])  # no patient on both sides
        assert len(set(patients[fold][positive[fold]])) == 3  # a third of the case patients each
    with pytest.raises(ValueError, match="cannot fill"):
        patient_folds(patients[:4], positive[:4], 3, seed=0)


def test_cv_weight_decay_scores_every_value_on_held_out_patients():
    rng = np.random.default_rng(0)
    y = (rng.random((120, 1)) < 0.3).astype(np.float32)
    z = rng.normal(size=(120, 16)).astype(np.float32)
    z[:, 0] += 3.0 * y[:, 0]  # one informative feature
    groups = np.array([f"p{i // 2}" for i in range(120)])
    cfg = TrainConfig(epochs=1, min_steps=60, batch_size=64, lr=1e-2, warmup_frac=0.0, bf16=False, progress=False)
    search = cv_probe_weight_decay(z, y, groups, cfg, [0.01, 1.0], seed=0, folds=3)
    assert len(search.scores) == 2 and all(0.8 < s <= 1.0 for s in search.scores)
    assert all(len(d["folds"]) == 3 for d in search.details)
    again = cv_probe_weight_decay(z, y, groups, cfg, [0.01, 1.0], seed=0, folds=3)
    assert again.scores == search.scores  # seeded
