"""params.yaml parsing: strict keys, types, stage sections."""

from dataclasses import dataclass, field

import pytest
import yaml

from ecgstudy import config
from ecgstudy.paths import repo_root


@dataclass(frozen=True)
class Inner:
    lo: float = 0.5
    hi: float = 40.0


@dataclass(frozen=True)
class Toy:
    name: str = "a"
    lr: float = 1e-3
    epochs: int = 2
    fractions: tuple[float, ...] = (0.1, 1.0)
    band: tuple[float, float] | None = None
    inner: Inner = field(default_factory=Inner)
    tags: dict[str, int] = field(default_factory=dict)

    def validate(self) -> None:
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")


def test_defaults_and_coercion():
    toy = config.from_dict(Toy, {"lr": 1, "fractions": [0.5], "band": [1, 2], "inner": {"hi": 30}}, "toy")
    assert toy.lr == 1.0 and isinstance(toy.lr, float)
    assert toy.fractions == (0.5,)
    assert toy.band == (1.0, 2.0)
    assert toy.inner == Inner(0.5, 30.0)
    assert toy.epochs == 2


def test_unknown_key_names_key_and_valid_keys():
    with pytest.raises(config.ConfigError) as err:
        config.from_dict(Toy, {"epoch": 3}, "toy")
    message = str(err.value)
    assert "'toy.epoch'" in message and "epochs" in message and "fractions" in message


def test_nested_unknown_key_is_reported_with_path():
    with pytest.raises(config.ConfigError, match=r"toy\.inner\.mid"):
        config.from_dict(Toy, {"inner": {"mid": 3}}, "toy")


@pytest.mark.parametrize(
    "values, fragment",
    [
        ({"epochs": "3"}, "toy.epochs"),
        ({"epochs": True}, "toy.epochs"),
        ({"fractions": 0.5}, "toy.fractions"),
        ({"band": [1, 2, 3]}, "toy.band"),
        ({"tags": {"a": "x"}}, "toy.tags"),
    ],
)
def test_wrong_types_fail(values, fragment):
    with pytest.raises(config.ConfigError, match=fragment.replace(".", r"\.")):
        config.from_dict(Toy, values, "toy")


def test_validate_hook_runs():
    with pytest.raises(config.ConfigError, match="epochs must be >= 1"):
        config.from_dict(Toy, {"epochs": 0}, "toy")


def test_load_params_rejects_unknown_top_level_key(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"seed": 1, "finetun": {}}))
    with pytest.raises(config.ConfigError, match="finetun"):
        config.load_params(path)


def test_load_params_missing_file_names_path(tmp_path):
    with pytest.raises(config.ConfigError, match="not found"):
        config.load_params(tmp_path / "nope.yaml")


def test_repository_params_are_valid():
    params = config.load_params(repo_root() / "params.yaml")
    config.validate_all(params)
    for stage in config.STAGE_SECTIONS:
        cfg = config.stage_config(stage, config.stage_sections(stage, params))
        for name in config.sections_of(stage):
            assert hasattr(cfg, name)


def test_stage_config_reports_mistyped_key_of_stage_section():
    params = config.load_params(repo_root() / "params.yaml")
    injected = config.stage_sections("finetune", params)
    injected["finetune"] = {**injected["finetune"], "lerning_rate": 0.1}
    with pytest.raises(config.ConfigError, match=r"finetune\.lerning_rate"):
        config.stage_config("finetune", injected)



@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=lambda: Inner(lo=1.0, hi=20.0))


def test_partial_nested_mapping_keeps_the_fields_own_defaults():
    outer = config.from_dict(Outer, {"inner": {"hi": 30}}, "outer")
    assert outer.inner == Inner(lo=1.0, hi=30.0)


def test_to_dict_round_trips():
    toy = config.from_dict(Toy, {"fractions": [0.5], "inner": {"hi": 30}}, "toy")
    assert config.from_dict(Toy, config.to_dict(toy), "toy") == toy
    assert yaml.safe_load(yaml.safe_dump(config.to_dict(toy))) == config.to_dict(toy)
