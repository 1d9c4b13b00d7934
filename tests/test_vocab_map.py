"""The SNOMED CT <-> SCP-ECG mapping table and its loader."""

from __future__ import annotations

import pandas as pd
import pytest

from ecgstudy.data import vocab_map as vm
from ecgstudy.data.labels import LabelError, UnknownCodeError, load_vocabulary
from ecgstudy.paths import resource

#: The 30 concepts the 2021 challenge scored (its dx_mapping_scored.csv), each of which must have a status.
SCORED = [
    "164889003", "164890007", "6374002", "426627000", "733534002", "713427006", "270492004", "713426002",
    "39732003", "445118002", "164909002", "251146004", "698252002", "426783006", "284470004", "10370003",
    "365413008", "427172004", "164947007", "111975006", "164917005", "47665007", "59118001", "427393009",
    "426177001", "427084000", "63593006", "164934002", "59931005", "17338001",
]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return vm.load_scp_snomed()


def test_bundled_table_is_valid_and_in_the_study_vocabulary(table):
    vocab = load_vocabulary()
    assert list(table.columns) == list(vm.COLUMNS)
    mapped = table[table["relation"] != vm.UNMAPPED]
    assert set(mapped["scp_code"]) <= set(vocab.codes)
    assert set(table["relation"]) == {*vm.RELATIONS, vm.UNMAPPED}
    assert (table.loc[table["relation"] == vm.UNMAPPED, "scp_code"] == "").all()
    assert not table["snomed_ct"].duplicated().any()  # every concept has exactly one status
    assert set(SCORED) <= set(table["snomed_ct"])
    assert len(mapped) >= 60 and mapped["scp_code"].nunique() >= 40


@pytest.mark.parametrize(
    "concept, scp",
    [
        ("164889003", "AFIB"), ("164890007", "AFLT"), ("426783006", "SR"), ("270492004", "1AVB"),
        ("713427006", "CRBBB"), ("59118001", "CRBBB"), ("713426002", "IRBBB"), ("164909002", "CLBBB"),
        ("733534002", "CLBBB"), ("426177001", "SBRAD"), ("427084000", "STACH"), ("164934002", "TAB_"),
        ("111975006", "LNGQT"), ("10370003", "PACE"), ("164873001", "LVH"), ("55827005", "VCLVH"),
        ("74390002", "WPW"), ("284470004", "PAC"), ("63593006", "PAC"), ("427172004", "PVC"),
        ("17338001", "PVC"), ("164884008", "PVC"), ("445118002", "LAFB"), ("251146004", "LVOLT"),
        ("164917005", "QWAVE"), ("698252002", "IVCD"), ("426761007", "SVTAC"), ("713422000", "SVTAC"),
        ("164947007", "LPR"), ("195042002", "2AVB"), ("27885002", "3AVB"), ("54329005", "AMI"),
        ("429622005", "STD_"), ("164931005", "STE_"), ("67741000119109", "LAO/LAE"),
        ("446358003", "RAO/RAE"), ("89792004", "RVH"), ("11157007", "BIGU"), ("251180001", "TRIGU"),
        ("59931005", "INVT"), ("427393009", "SARRH"),
    ],
)
def test_known_concepts_map_to_their_statement(concept, scp):
    labels, unmapped = vm.snomed_to_scp([concept], "r1")
    assert labels == {scp: 1.0} and unmapped == []


@pytest.mark.parametrize(
    "concept",
    ["39732003", "47665007", "251200008",  # QRS axis: PTB-XL's heart_axis column, not statements
     "164865005", "426627000", "233917008", "6374002", "428750005", "282825002"],
)
def test_deliberately_unmapped_concepts_give_no_label(table, concept):
    assert vm.snomed_to_scp([concept], "r1") == ({}, [concept])
    row = table[table["snomed_ct"] == concept].iloc[0]
    assert row["relation"] == vm.UNMAPPED and row["scp_code"] == "" and row["note"]


def test_axis_rows_say_why(table):
    notes = table.loc[table["snomed_ct"].isin(["39732003", "47665007"]), "note"]
    assert notes.str.contains("heart_axis").all()


def test_snomed_to_scp_merges_repeats_and_reports_unmapped_in_order():
    labels, unmapped = vm.snomed_to_scp([164889003, " 59118001", "713427006", "123456789", "39732003", "123456789"], "r7")
    assert labels == {"AFIB": 1.0, "CRBBB": 1.0}
    assert unmapped == ["123456789", "39732003"]


def test_relations_can_be_restricted():
    assert vm.snomed_to_scp(["59118001", "713427006"], "r1", relations=("exact",)) == ({"CRBBB": 1.0}, ["59118001"])
    assert vm.snomed_to_scp(["713422000"], "r1", relations=("exact", "scp_narrower"))[0] == {}
    with pytest.raises(ValueError, match="unknown relation"):
        vm.snomed_to_scp(["713422000"], "r1", relations=("close",))


@pytest.mark.parametrize("bad", ["AF", "164889003.0", "", "-164889003"])
def test_malformed_concept_is_a_label_error_naming_the_record(bad):
    with pytest.raises(LabelError, match=r"record rec-9: .*not a SNOMED CT concept id"):
        vm.snomed_to_scp(["164889003", bad], "rec-9")


def test_scp_to_snomed():
    assert vm.scp_to_snomed("PVC") == ["427172004", "17338001", "164884008", "251182009"]
    assert vm.scp_to_snomed("PVC", relations=("exact",)) == ["427172004", "17338001"]
    assert vm.scp_to_snomed("NORM") == []  # no challenge concept means "normal ECG"
    assert vm.scp_to_snomed("IMI") == []
    with pytest.raises(UnknownCodeError, match="NOTACODE"):
        vm.scp_to_snomed("NOTACODE")


def test_concept_id_check_digit_catches_every_single_digit_typo(table):
    assert all(vm.is_concept_id(c) for c in table["snomed_ct"])
    for concept in table["snomed_ct"]:
        for i, digit in enumerate(concept):
            for other in "0123456789":
                if other != digit:
                    assert not vm.is_concept_id(concept[:i] + other + concept[i + 1 :]), (concept, i, other)
    assert not vm.is_concept_id("0164889003") and not vm.is_concept_id("16488900x")
    assert not vm.is_concept_id("164889003" + "1")  # not a concept partition


def _write_variant(tmp_path, edit) -> str:
    table = pd.read_csv(resource(vm.TABLE), dtype=str, keep_default_na=False)
    table = edit(table)
    path = tmp_path / "map.csv"
    table.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.assign(scp_code=t["scp_code"].replace("AFIB", "AFIBX")), r"not in the study vocabulary.*AFIBX"),
        (lambda t: t.assign(relation=t["relation"].replace("scp_broader", "broader")), "relation must be one of"),
        (lambda t: t.assign(snomed_ct=t["snomed_ct"].replace("164889003", "164889004")), "not a valid SNOMED CT"),
        (lambda t: pd.concat([t, t.iloc[[0]]]), "duplicate"),
        (lambda t: pd.concat([t, pd.DataFrame([["", "164889003", "af", "none", ""]], columns=t.columns)]),
         "both mapped and marked"),
        (lambda t: pd.concat([t, pd.DataFrame([["AFIB", "39732003", "lad", "none", ""]], columns=t.columns)]),
         "'none' row with an scp_code"),
        (lambda t: pd.concat([t, pd.DataFrame([["", "164951009", "x", "exact", ""]], columns=t.columns)]),
         "without scp_code"),
        (lambda t: t.drop(columns="relation"), r"missing column.*relation"),
    ],
)
def test_load_validates_and_names_the_file(tmp_path, edit, message):
    path = _write_variant(tmp_path, edit)
    with pytest.raises(ValueError, match=message) as info:
        vm.load_scp_snomed(path)
    assert "map.csv" in str(info.value)


def test_error_names_the_line(tmp_path):
    path = _write_variant(tmp_path, lambda t: t.assign(scp_code=t["scp_code"].replace("AFLT", "FLUTTER")))
    table = pd.read_csv(resource(vm.TABLE), dtype=str, keep_default_na=False)
    line = int(table.index[table["scp_code"] == "AFLT"][0]) + 2  # the header is line 1
    with pytest.raises(ValueError, match=rf"line {line}: 'FLUTTER' / 164890007"):
        vm.load_scp_snomed(path)


def test_missing_table_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        vm.load_scp_snomed(tmp_path / "nowhere.csv")
