"""params.yaml is generated from the config dataclasses; profiles overlay it for real datasets."""

import dataclasses
import subprocess

import pytest
import yaml

from ecgstudy import config, params_file
from ecgstudy.paths import repo_root

PROFILES = sorted(p.stem for p in (repo_root() / "profiles").glob("*.yaml"))


def _committed_params() -> str:
    """params.yaml as committed (a user's working copy may hold a profile or an experiment)."""
    shown = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=repo_root(), capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else (repo_root() / "params.yaml").read_text()


def test_committed_params_yaml_is_the_generated_defaults():
    assert _committed_params() == params_file.render(), (
        "the committed params.yaml differs from the config defaults: run `make params` and commit it"
    )


def _fields(obj, where):
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        yield type(obj), f.name, f"{where}.{f.name}"
        if dataclasses.is_dataclass(value):
            yield from _fields(value, f"{where}.{f.name}")
        elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            yield from _fields(value[0], f"{where}.{f.name}[0]")


def test_every_parameter_has_a_comment():
    missing = [where for name in config.SECTIONS for cls, field, where in _fields(config.schema(name)(), name)
               if not params_file.field_comments(cls).get(field)]
    assert not missing, f"parameters without an explanatory comment: {missing}"


@pytest.mark.parametrize("profile", [p for p in PROFILES if p != "full"])
def test_profiles_render_to_valid_params(profile):
    overlay = params_file.load_profile(profile)
    raw = yaml.safe_load(params_file.render(overlay))
    params = config.resolve_layout(raw)
    config.validate_all(params)
    assert params["data"]["source"] == raw["study"]["data_source"] == overlay["data"]["source"] == profile
    defaults = config.resolve_layout(yaml.safe_load(params_file.render()))
    assert params["pretrain"] == defaults["pretrain"]  # profiles change data handling, not the pretraining design


def test_real_data_profiles_declare_a_foundation_corpus_and_full_sizes_the_world_for_a_gpu():
    for profile in [p for p in PROFILES if p != "full"]:
        params = config.resolve_layout(yaml.safe_load(params_file.render(params_file.load_profile(profile))))
        assert params["data"]["foundation"]["source"] not in (None, profile), profile
    full = config.resolve_layout(yaml.safe_load(params_file.render(params_file.load_profile("full"))))
    config.validate_all(full)
    assert full["simulate"]["sizes"]["foundation"] == {"patients": 75000, "records": 100000}
    assert full["data"]["source"] == "simulated" and full["pretrain"]["store"] == "foundation"
    assert full["pretrain"]["optim"]["bf16"] is True and full["pretrain"]["optim"]["device"] == "cuda"
    assert full["finetune"]["optim"]["bf16"] is True and full["transfer"]["probe"]["device"] == "cuda"


def test_ptbxl_profile_is_the_benchmark_protocol():
    params = config.resolve_layout(yaml.safe_load(params_file.render(params_file.load_profile("ptbxl"))))
    assert params["curate"]["fs"] == 100 and params["curate"]["use_official_folds"] is True
    ft = params["finetune"]
    assert (ft["train_crop_s"], ft["eval_window_s"], ft["eval_stride_s"], ft["eval_aggregate"]) == (2.5, 2.5, 1.25, "max")
    assert ft["eval_splits"] == ["test"]  # PTB-XL declares no external site


def test_overlay_merges_mappings_and_replaces_lists():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2}
    assert params_file.merge(base, {"a": {"y": [3]}}) == {"a": {"x": 1, "y": [3]}, "b": 2}


def test_bad_profiles_fail_naming_the_problem(tmp_path, monkeypatch):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "typo.yaml").write_text("finetune:\n  fractoins: [0.1]\n")
    (tmp_path / "profiles" / "section.yaml").write_text("pretrian: {}\n")
    with pytest.raises(config.ConfigError, match="fractoins"):
        params_file.render(params_file.load_profile("typo", tmp_path))
    with pytest.raises(config.ConfigError, match="pretrian"):
        params_file.load_profile("section", tmp_path)
    with pytest.raises(config.ConfigError, match=r"profiles: \['section', 'typo'\]"):
        params_file.load_profile("absent", tmp_path)


def test_cli_check_reports_drift(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ECGSTUDY_ROOT", str(tmp_path))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    assert params_file.main(["--out", "p.yaml"]) == 0
    assert params_file.main(["--out", "p.yaml", "--check"]) == 0
    (tmp_path / "p.yaml").write_text((tmp_path / "p.yaml").read_text().replace("seed: 20261122", "seed: 1"))
    assert params_file.main(["--out", "p.yaml", "--check"]) == 1
    assert "differs" in capsys.readouterr().out


def test_params_yaml_shows_the_study_design_first_and_optimisers_by_name():
    raw = yaml.safe_load(params_file.render())
    assert list(raw)[:2] == ["seed", "study"] and list(raw)[-1] == "optimisers"
    assert set(raw["study"]) == set(config.DESIGN)
    assert "fractions" not in raw["finetune"] and raw["finetune"]["optim"] == "finetune"
    resolved = config.resolve_layout(raw)
    assert resolved["finetune"]["fractions"] == raw["study"]["label_fractions"]
    assert resolved["finetune"]["probe"] == raw["optimisers"]["finetune_probe"]


def test_layout_errors_name_the_key():
    raw = yaml.safe_load(params_file.render())
    twice = {**raw, "finetune": {**raw["finetune"], "fractions": [0.5]}}
    with pytest.raises(config.ConfigError, match=r"finetune.fractions is set twice: it is study.label_fractions"):
        config.resolve_layout(twice)
    with pytest.raises(config.ConfigError, match=r"study.label_fraction"):
        config.resolve_layout({**raw, "study": {"label_fraction": [0.5]}})
    with pytest.raises(config.ConfigError, match=r"finetune.probe names optimiser preset 'fast'"):
        config.resolve_layout({**raw, "finetune": {**raw["finetune"], "probe": "fast"}})


def test_runner_refuses_a_preset_dvc_does_not_track(tmp_path):
    from ecgstudy import run_notebook

    raw = yaml.safe_load(params_file.render())
    raw["finetune"]["probe"] = "transfer_probe"  # legal params, but dvc.yaml tracks optimisers.finetune_probe
    assert "optimisers.transfer_probe" in config.tracked_keys("finetune", raw)
    with pytest.raises(config.ConfigError, match=r"does not track \['optimisers.transfer_probe'\]"):
        run_notebook.check_dvc_params("finetune", raw, repo_root())
    run_notebook.check_dvc_params("finetune", yaml.safe_load(params_file.render()), repo_root())  # defaults: fine
