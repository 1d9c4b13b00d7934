"""Score files: what training stages save for the evaluate stage, read back bit for bit."""

import numpy as np
import pytest

from ecgstudy.engine.scores import ScoreFile


def _file() -> ScoreFile:
    rng = np.random.default_rng(0)
    scores = ScoreFile(meta={"task": "all", "fractions": [0.05, 1.0]})
    scores.add_group("test", (rng.random((6, 2)) < 0.5).astype(np.int8), [f"p{i}" for i in range(6)], ["NORM", "MI"])
    scores.add(("pretrained", "0.05"), "test", rng.random((6, 2)).astype(np.float32))
    scores.add(("scratch", "1"), "test", rng.random((6, 2)))
    return scores


def test_round_trip_keeps_values_dtypes_order_and_meta(tmp_path):
    before = _file()
    after = ScoreFile.load(before.save(tmp_path / "s.npz"))
    assert after.meta == before.meta and after.labels == before.labels
    assert list(after.scores) == list(before.scores)  # insertion order survives (statistics iterate in it)
    for key, value in before.scores.items():
        assert after.scores[key].dtype == value.dtype and np.array_equal(after.scores[key], value)
    assert np.array_equal(after.y["test"], before.y["test"]) and after.patients["test"].tolist() == [f"p{i}" for i in range(6)]


def test_shapes_and_keys_are_checked():
    scores = _file()
    with pytest.raises(ValueError, match=r"do not match targets \(6, 2\)"):
        scores.add(("x",), "test", np.zeros((5, 2)))
    with pytest.raises(KeyError, match="unknown group 'val'"):
        scores.add(("x",), "val", np.zeros((6, 2)))
    with pytest.raises(ValueError, match="may not contain '/'"):
        scores.add(("a/b",), "test", np.zeros((6, 2)))
    with pytest.raises(ValueError, match="do not match 3 patients x 2 labels"):
        scores.add_group("val", np.zeros((4, 2)), ["a", "b", "c"], ["NORM", "MI"])


def test_a_file_that_is_not_a_score_file_is_named(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz: not a score file"):
        ScoreFile.load(bad)
