"""Typed, validated study parameters.

``params.yaml`` holds ``seed``, the ``study`` section (the values that define the study, :data:`DESIGN`),
one section per stage plus the shared ``data``, and ``optimisers`` (named presets, :data:`OPTIMISER_KEYS`).
:func:`load_params` resolves that layout into plain stage sections (:func:`resolve_layout`); each is then
parsed into the dataclass that the stage's module declares (see :data:`SECTIONS`). Unknown or mistyped
keys fail at once with a :class:`ConfigError` that names the key and lists the valid ones, and the links
between sections are checked before any stage runs (:func:`validate_all`). Layout: docs/architecture.md
("Parameters").
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ecgstudy.paths import repo_root

T = TypeVar("T")

#: params.yaml section -> "module:DataclassName" holding its typed schema (imported lazily).
SECTIONS: dict[str, str] = {
    "data": "ecgstudy.config:DataConfig",
    "simulate": "ecgstudy.simulate:SimulateConfig",
    "curate": "ecgstudy.data.curate_config:CurateConfig",
    "pretrain": "ecgstudy.stages.pretrain:PretrainConfig",
    "finetune": "ecgstudy.stages.finetune:FinetuneConfig",
    "transfer": "ecgstudy.stages.transfer:TransferConfig",
    "latent": "ecgstudy.stages.latent:LatentConfig",
    "saliency": "ecgstudy.stages.saliency:SaliencyConfig",
    "evaluate": "ecgstudy.stages.evaluate:EvaluateConfig",
    "report": "ecgstudy.stages.report:ReportConfig",
}
#: Top-level scalar keys of params.yaml.
SCALARS: dict[str, type] = {"seed": int}
#: The values that define the study. params.yaml shows them first, in its ``study`` section, and nowhere
#: else: ``study.<name>`` is the value of ``<section>.<key>`` (set it there, e.g.
#: ``dvc exp run -S study.label_fractions=[0.1,1.0]``; setting the section key too is an error).
DESIGN: dict[str, str] = {
    "data_source": "data.source",
    "corpus_sizes": "simulate.sizes",
    "pretraining_runs": "pretrain.runs",
    "kept_encoder": "pretrain.keep",
    "strategies": "finetune.strategies",
    "label_fractions": "finetune.fractions",
    "finetune_repeats": "finetune.repeats",
    "rare_strategies": "transfer.strategies",
    "rare_training_cases": "transfer.n_train_cases",
    "rare_repeats": "transfer.repeats",
}
#: Optimiser settings are named presets in params.yaml's ``optimisers`` section; these keys name one
#: (``finetune.probe: finetune_probe``), and the default preset of each carries the key's path as its name.
OPTIMISER_KEYS: dict[str, str] = {
    "pretrain.optim": "pretrain",
    "pretrain.probe.optim": "pretrain_probe",
    "finetune.optim": "finetune",
    "finetune.probe": "finetune_probe",
    "transfer.optim": "transfer",
    "transfer.probe": "transfer_probe",
}
#: Top-level sections that are layout, not a stage's: resolved into the stage sections on load.
LAYOUT = ("study", "optimisers")
#: What each stage reads: whole sections, or ``section.key`` where it reads only that key of a shared
#: section (DVC then reruns it only when that key changes). The runner injects the whole section either
#: way; dvc.yaml lists exactly :func:`tracked_keys` under the stage's ``params:``.
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "curate": ("seed", "data", "simulate", "curate"),
    "pretrain": ("seed", "data.curated", "pretrain"),
    "finetune": ("seed", "data.curated", "finetune"),
    "transfer": ("seed", "data.curated", "data.source", "transfer"),
    "latent": ("seed", "data.curated", "latent"),
    "saliency": ("seed", "data.curated", "saliency"),
    "evaluate": ("seed", "evaluate"),
    "report": ("report",),
}


class ConfigError(ValueError):
    """A params.yaml problem: names the section and key, and what is valid."""


@dataclass(frozen=True)
class FoundationSource:
    """A real pretraining corpus (its own dataset, curated into store ``foundation``)."""

    source: str = "code15"  # reader of the pretraining corpus (ptbxl | cinc | code15 | mimic | wfdb)
    root: str = "data/raw/code15"  # its raw folder


@dataclass(frozen=True)
class DataConfig:
    """Where the raw data comes from and where the curated stores go."""

    source: str = "simulated"  # simulated | ptbxl | cinc | code15 | mimic | wfdb: reader used by the curate stage
    root: str = "data/raw/ptbxl"  # raw dataset folder (ignored for the simulated source)
    curated: str = "data/curated"  # curate stage output: stores foundation/, main/, rare/ (+ raw/ when simulated)
    foundation: FoundationSource | None = None  # real data: the pretraining corpus, e.g. {source: code15, root: data/raw/code15}; null = none (pretraining refused); the simulator writes its own

    def validate(self) -> None:
        if self.foundation is not None and self.source == "simulated":
            raise ValueError("data.foundation is for real datasets; the simulated world has its own foundation "
                             "corpus (simulate.corpora): set data.foundation: null")
        if self.foundation is not None and (self.foundation.source, self.foundation.root) == (self.source, self.root):
            raise ValueError(f"data.foundation is the downstream dataset itself ({self.source} at {self.root}): "
                             "pretraining must read another corpus")


def schema(section: str) -> type:
    """The dataclass declared for a params.yaml section."""
    if section not in SECTIONS:
        raise ConfigError(f"unknown params.yaml section {section!r}; valid sections: {sorted(SECTIONS)}")
    module, name = SECTIONS[section].split(":")
    return getattr(importlib.import_module(module), name)


def _check_type(value: Any, tp: Any, where: str) -> Any:
    """Check (and gently coerce int->float, list->tuple) ``value`` against annotation ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _check_type(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} does not match {tp}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {list(value)!r}")
            items = [_check_type(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            item_tp = args[0] if args else Any
            items = [_check_type(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        ktp, vtp = args if args else (Any, Any)
        return {
            _check_type(k, ktp, where): _check_type(v, vtp, f"{where}.{k}") for k, v in value.items()
        }
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {tp.__name__}, got boolean {value!r}")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def from_dict(cls: type[T], values: dict[str, Any] | None, where: str) -> T:
    """Build dataclass ``cls`` from a mapping, strictly.

    Unknown keys raise :class:`ConfigError` naming the key and the valid ones; values are type-checked
    against the annotations; keys left out take the dataclass defaults.
    """
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(repr(f'{where}.{k}') for k in unknown)}; "
            f"valid keys of {where!r}: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        default = _default(fields[name])
        if isinstance(value, dict) and dataclasses.is_dataclass(default):
            # a partial nested mapping overrides the field's own default, key by key
            values[name] = {**_shallow_dict(default), **value}
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {missing}")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    return obj


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _shallow_dict(obj: Any) -> dict[str, Any]:
    """Field values of a dataclass instance, nested dataclasses turned into mappings."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        out[f.name] = _shallow_dict(value) if dataclasses.is_dataclass(value) else value
    return out


def to_dict(obj: Any) -> Any:
    """A config dataclass as plain YAML-ready data (tuples become lists), for dumping and checkpoints."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    """Read params.yaml (default: the repository's), check its top-level keys, and resolve its layout
    (:func:`resolve_layout`): the result has one mapping per stage section, as the code reads them."""
    path, params = load_raw(path)
    return resolve_layout(params, str(path))


def load_raw(path: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """(path, params.yaml as written, with ``study`` and ``optimisers``), top-level keys checked."""
    path = Path(path) if path else repo_root() / "params.yaml"
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"params file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    valid = set(SECTIONS) | set(SCALARS) | set(LAYOUT)
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {unknown}; valid keys: {sorted(valid)}")
    for key, tp in SCALARS.items():
        if key in params:
            _check_type(params[key], tp, key)
    return path, params


def _path_get(params: dict[str, Any], dotted: str) -> tuple[dict[str, Any] | None, str]:
    """(the mapping holding ``dotted``'s last key, that key); None when a parent is missing."""
    *parents, last = dotted.split(".")
    node: Any = params
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return None, last
    return (node if isinstance(node, dict) else None), last


def resolve_layout(params: dict[str, Any], where: str = "params.yaml") -> dict[str, Any]:
    """Stage sections as the code reads them: ``study`` values moved to their keys (:data:`DESIGN`),
    optimiser preset names replaced by the presets of ``optimisers`` (:data:`OPTIMISER_KEYS`).

    Fails naming the key when a study value is also set in its section, a study key is unknown, or a
    preset name is not in ``optimisers``. Returns a new mapping without the layout sections.
    """
    import copy

    out = copy.deepcopy({k: v for k, v in params.items() if k not in LAYOUT})
    study = params.get("study") or {}
    if not isinstance(study, dict):
        raise ConfigError(f"{where}: 'study' must be a mapping of {sorted(DESIGN)}")
    unknown = sorted(set(study) - set(DESIGN))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {['study.' + k for k in unknown]}; valid: {sorted(DESIGN)}")
    for name, value in study.items():
        section_name, key = DESIGN[name].split(".", 1)
        part = out.setdefault(section_name, {})
        if key in part:
            raise ConfigError(f"{where}: {DESIGN[name]} is set twice: it is study.{name} (set it there only)")
        part[key] = value
    presets = params.get("optimisers") or {}
    for dotted in OPTIMISER_KEYS:
        holder, key = _path_get(out, dotted)
        if holder is None or not isinstance(holder.get(key), str):
            continue  # absent (defaults) or written out in place
        name = holder[key]
        if name not in presets:
            raise ConfigError(f"{where}: {dotted} names optimiser preset {name!r}, which is not in 'optimisers' "
                              f"(presets: {sorted(presets)})")
        holder[key] = presets[name]
    return out


def section(name: str, values: dict[str, Any] | None = None, params_file: str | Path | None = None):
    """Typed config of one section: from ``values`` if given, else read from params.yaml."""
    if values is None:
        values = load_params(params_file).get(name, {})
    return from_dict(schema(name), values, name)


def validate_all(params: dict[str, Any]) -> None:
    """Parse every section of ``params`` (fail fast on any mistyped key), then check the links between
    sections (which pretraining run a stage reads, which fine-tuned classifier saliency explains: see
    :func:`ecgstudy.stages.artifacts.check_links`). Absent sections take their defaults."""
    from ecgstudy.stages.artifacts import check_links

    typed = {name: from_dict(schema(name), params.get(name), name) for name in SECTIONS}
    try:
        check_links(typed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def sections_of(stage: str) -> list[str]:
    """The params sections ``stage`` reads (section names of :data:`STAGE_SECTIONS`, in order)."""
    if stage not in STAGE_SECTIONS:
        raise ConfigError(f"unknown stage {stage!r}; stages: {list(STAGE_SECTIONS)}")
    return list(dict.fromkeys(entry.split(".")[0] for entry in STAGE_SECTIONS[stage]))


def tracked_keys(stage: str, raw: dict[str, Any]) -> set[str]:
    """The params.yaml keys ``stage`` reads, exactly as dvc.yaml lists them under the stage's ``params:``.

    Its :data:`STAGE_SECTIONS` entries, with the ``study`` values that belong to them in place of their
    section keys, and the ``optimisers`` presets its sections name in ``raw`` (params.yaml as written).
    """
    reads = STAGE_SECTIONS[stage]
    design = {dotted: f"study.{name}" for name, dotted in DESIGN.items()}
    keys = {design.get(entry, entry) for entry in reads}
    keys |= {study for dotted, study in design.items() if dotted.split(".")[0] in reads}
    for dotted, default in OPTIMISER_KEYS.items():
        if dotted.split(".")[0] in reads:
            holder, key = _path_get(raw, dotted)
            name = holder.get(key, default) if holder is not None else default
            keys.add(f"optimisers.{name}" if isinstance(name, str) else dotted)
    return keys


def stage_sections(stage: str, params: dict[str, Any]) -> dict[str, Any]:
    """The part of ``params`` that ``stage`` reads (what the runner injects into its notebook)."""
    return {name: params[name] for name in sections_of(stage) if name in params}


def stage_config(stage: str, injected: dict[str, Any] | None = None) -> types.SimpleNamespace:
    """Typed configuration of one stage, as its notebook uses it.

    ``injected`` is what the runner passed (the stage's sections of params.yaml); when empty (the
    notebook opened interactively in JupyterLab) the sections are read from the repository's params.yaml.
    Returns a namespace with ``seed`` (int) and one typed dataclass per section, e.g. ``cfg.finetune``.
    """
    if not injected:
        params = load_params()
        validate_all(params)
        injected = stage_sections(stage, params)
    unknown = sorted(set(injected) - set(sections_of(stage)))
    if unknown:
        raise ConfigError(f"stage {stage!r} does not read section(s) {unknown}")
    out = types.SimpleNamespace()
    for name in sections_of(stage):
        if name in SCALARS:
            if name not in injected:
                raise ConfigError(f"params.yaml: missing top-level key {name!r} (needed by stage {stage!r})")
            setattr(out, name, _check_type(injected[name], SCALARS[name], name))
        else:
            setattr(out, name, from_dict(schema(name), injected.get(name, {}), name))
    return out
