"""Label vocabulary, scp_codes parsing and the PTB-XL benchmark tasks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecgstudy.data import labels as lab
from ecgstudy.paths import resource


@pytest.fixture(scope="module")
def vocab() -> lab.Vocabulary:
    return lab.load_vocabulary()


def test_bundled_vocabulary_has_the_ptbxl_counts(vocab):
    assert len(vocab) == 71
    assert len(vocab.codes_of("diagnostic")) == 44
    assert len(vocab.codes_of("form")) == 19
    assert len(vocab.codes_of("rhythm")) == 12
    both = set(vocab.codes_of("diagnostic")) & set(vocab.codes_of("form"))
    assert both == {"NDT", "NST_", "DIG", "LNGQT"}
    assert vocab.kind("NDT") == "diagnostic+form"
    assert vocab.kind("AFIB") == "rhythm"


@pytest.mark.parametrize(
    "task, size",
    [("all", 71), ("diagnostic", 44), ("subdiagnostic", 23), ("superdiagnostic", 5), ("form", 19), ("rhythm", 12)],
)
def test_task_sizes(vocab, task, size):
    assert len(lab.task_names(vocab, task)) == size


def test_superclasses_and_class_sizes(vocab):
    assert lab.task_names(vocab, "superdiagnostic") == ["CD", "HYP", "MI", "NORM", "STTC"]
    classes = vocab.table.loc[vocab.table["diagnostic"], "diagnostic_class"].value_counts().to_dict()
    assert classes == {"NORM": 1, "MI": 14, "STTC": 13, "CD": 11, "HYP": 5}


def test_label_info_round_trip(vocab):
    again = lab.Vocabulary.from_label_info(vocab.label_info())
    pd.testing.assert_frame_equal(again.table, vocab.table)


def test_dataset_statements_add_rows(tmp_path):
    table = pd.read_csv(resource("ptbxl_scp_statements.csv"), index_col=0)
    extra = pd.DataFrame({"description": ["Brugada type 1"], "diagnostic": [1.0], "diagnostic_class": ["CD"],
                          "diagnostic_subclass": ["BRUG"]}, index=["BRUGADA"])
    pd.concat([table, extra]).to_csv(tmp_path / "scp_statements.csv")
    vocab = lab.load_vocabulary(tmp_path / "scp_statements.csv")
    assert len(vocab) == 72 and vocab.codes[-1] == "BRUGADA"
    assert len(lab.task_names(vocab, "diagnostic")) == 45
    assert "BRUG" in lab.task_names(vocab, "subdiagnostic") and len(lab.task_names(vocab, "superdiagnostic")) == 5


def test_rare_rows_without_a_class_are_accepted(tmp_path):
    table = pd.read_csv(resource("ptbxl_scp_statements.csv"), index_col=0)
    extra = pd.DataFrame({"description": ["hyperkalaemia"], "diagnostic": [1.0], "diagnostic_subclass": ["HYPERK"]},
                         index=["HYPERK"])
    pd.concat([table, extra]).to_csv(tmp_path / "scp_statements.csv")
    vocab = lab.load_vocabulary(tmp_path / "scp_statements.csv")
    assert lab.aggregate({"HYPERK": 100.0}, vocab, "superdiagnostic") == set()
    assert lab.aggregate({"HYPERK": 100.0}, vocab, "subdiagnostic") == {"HYPERK"}
    assert len(lab.task_names(vocab, "superdiagnostic")) == 5


def test_missing_statement_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        lab.load_vocabulary(tmp_path / "nope.csv")


def test_parse_scp_codes_keeps_likelihood_zero():
    assert lab.parse_scp_codes("{'NORM': 100.0, 'SR': 0.0}", "1") == {"NORM": 100.0, "SR": 0.0}
    assert lab.parse_scp_codes("{}", "1") == {}
    assert lab.parse_scp_codes(float("nan"), "1") == {}


@pytest.mark.parametrize("cell", ["{'NORM': 100.0", "['NORM']", "{'NORM': 'high'}", "__import__('os').getcwd()"])
def test_parse_scp_codes_rejects_bad_cells_naming_the_record(cell):
    with pytest.raises(lab.LabelError, match="record 4242"):
        lab.parse_scp_codes(cell, "4242")


def test_unknown_code_names_record_and_code(vocab):
    with pytest.raises(lab.LabelError, match=r"record 7.*NOTACODE"):
        lab.check_codes({"NORM": 1.0, "NOTACODE": 1.0}, vocab, "7")
    lab.check_codes({"NORM": 1.0}, vocab, "7")


def test_aggregate_follows_the_benchmark(vocab):
    codes = {"IMI": 50.0, "ILMI": 0.0, "SR": 0.0, "NDT": 0.0}
    assert lab.aggregate(codes, vocab, "all") == set(codes)
    assert lab.aggregate(codes, vocab, "diagnostic") == {"IMI", "ILMI", "NDT"}
    assert lab.aggregate(codes, vocab, "form") == {"NDT"}
    assert lab.aggregate(codes, vocab, "rhythm") == {"SR"}
    assert lab.aggregate(codes, vocab, "subdiagnostic") == {"IMI", "STTC"}
    assert lab.aggregate(codes, vocab, "superdiagnostic") == {"MI", "STTC"}
    with pytest.raises(ValueError, match="unknown label task"):
        lab.aggregate(codes, vocab, "diagnosis")


def _records(vocab, rows: list[dict]) -> pd.DataFrame:
    y = np.stack([lab.encode(r, vocab) for r in rows])
    return pd.DataFrame(y, columns=[f"y_{c}" for c in vocab.codes]).assign(record_id=[str(i) for i in range(len(rows))])


def test_task_labels_drop_records_without_a_task_label(vocab):
    rows = [{"NORM": 100, "SR": 0}, {"IMI": 0, "SR": 0}, {"AMI": 10}, {"SR": 0}, {"PVC": 100}]
    records = _records(vocab, rows)
    names, keep = lab.task_labels(records, "superdiagnostic")
    assert names == ["MI", "NORM"]  # labels without positives dropped (min_positives=1)
    assert keep.tolist() == [True, True, True, False, False]
    task = lab.task_labels(records, "superdiagnostic")
    assert task.y.dtype == np.float32
    assert task.y.tolist() == [[0, 1], [1, 0], [1, 0], [0, 0], [0, 0]]
    assert task.counts.tolist() == [2, 1]
    rhythm = lab.task_labels(records, "rhythm")
    assert rhythm.names == ["SR"] and rhythm.keep.tolist() == [True, True, False, True, False]


def test_task_labels_min_positives_and_within(vocab):
    rows = [{"NORM": 1}, {"NORM": 1}, {"IMI": 1}, {"IMI": 1}, {"AMI": 1}]
    records = _records(vocab, rows)
    two = lab.task_labels(records, "diagnostic", min_positives=2)
    assert two.names == ["NORM", "IMI"] and two.keep.tolist() == [True, True, True, True, False]
    train_only = lab.task_labels(records, "diagnostic", min_positives=1, within=np.array([0, 1, 4]))
    assert train_only.names == ["NORM", "AMI"]
    assert train_only.keep.tolist() == [True, True, False, False, True]


def test_task_labels_reject_columns_outside_the_vocabulary(vocab):
    records = _records(vocab, [{"NORM": 1}]).assign(y_MADEUP=1)
    with pytest.raises(lab.LabelError, match="y_MADEUP"):
        lab.task_labels(records, "all")
