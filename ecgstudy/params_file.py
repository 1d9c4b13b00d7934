"""Write ``params.yaml`` from the config dataclasses, optionally with a named profile applied.

``params.yaml`` is generated, not hand-edited in parallel with the code: every key, its default and the
comment beside it come from the dataclass each stage declares (:data:`ecgstudy.config.SECTIONS`), so the
file can never drift from what the code accepts. A *profile* (``profiles/<name>.yaml``) is an overlay
holding only the keys that differ from the defaults, e.g. ``profiles/ptbxl.yaml`` switches the study to
PTB-XL at the benchmark protocol; nested mappings merge key by key, lists replace wholesale. The overlay
is validated as strictly as params.yaml itself (an unknown key fails naming it).

Usage::

    python -m ecgstudy.params_file                    # defaults (the simulated study) -> params.yaml
    python -m ecgstudy.params_file --profile ptbxl    # PTB-XL profile -> params.yaml
    python -m ecgstudy.params_file --check            # exit 1 if params.yaml differs from the defaults
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from ecgstudy import config
from ecgstudy.paths import repo_root

#: Folder of profile overlays, relative to the repository root.
PROFILES_DIR = Path("profiles")
#: Master seed of the study (the only top-level scalar).
DEFAULT_SEED = 20261122
#: Heading comment above each section.
HEADINGS = {
    "data": "where the raw data comes from and where the curated stores go (all stages)",
    "simulate": "the built-in simulated world: corpora, their sites and devices (curate stage, when data.source is simulated); ranges: ecgstudy/simulate/SOURCES.md",
    "curate": "harmonisation, quality checks and splits (curate stage)",
    "pretrain": "pretraining objectives x encoders compared; the kept encoder feeds every later stage (pretrain stage)",
    "finetune": "multi-label diagnosis: pretrained vs scratch vs linear probes at several label fractions (finetune stage)",
    "transfer": "rare-disease transfer with small case-control sets (transfer stage)",
    "latent": "embeddings, UMAP and k-NN probe (latent stage)",
    "saliency": "attribution maps, scored against the simulator's signature masks when present (saliency stage)",
    "evaluate": "intervals and paired comparisons from the saved scores: a setting here reruns no training (evaluate stage)",
    "report": "the one-page HTML report (report stage)",
}
_HEADER = [
    "# ecgstudy study parameters, generated from the code's defaults (`make params`). Read `study` first: the",
    "# values that define the study. Then one section per stage, in pipeline order, and the named optimiser",
    "# presets the stages use. Every value is a study choice with its reason beside it; change one with",
    "# `dvc exp run -S section.key=value` (e.g. -S study.label_fractions=[0.1,1.0]). Unknown or mistyped keys",
    "# fail at once, naming the key and the valid ones. Layout: docs/architecture.md (\"Parameters\").",
]
STUDY_HEADING = ("THE STUDY DESIGN: what is compared, on what data, with how many repeats. Each value is the key "
                 "named in [brackets]; set it here only")
OPTIMISERS_HEADING = "named optimiser presets (ecgstudy.engine.train.TrainConfig); the sections name the one they use"
_FIELD = re.compile(r"\s+(\w+)\s*:[^#]*?(?:#\s*(.*))?$")
_CLOSING = re.compile(r"\s+\)+\s*#\s*(.*)$")


def field_comments(cls: type) -> dict[str, str]:
    """Inline ``# comment`` of each dataclass field (also one trailing a multi-line default's ``)``)."""
    out: dict[str, str] = {}
    for klass in cls.__mro__:
        if not dataclasses.is_dataclass(klass):
            continue
        lines = inspect.getsource(klass).splitlines()
        for i, line in enumerate(lines):
            match = _FIELD.match(line)
            if not match or match.group(1) in out:
                continue
            comment = match.group(2)
            for later in lines[i + 1 : i + 16] if not comment else []:
                closing = _CLOSING.match(later)
                if closing:
                    comment = closing.group(1)
                    break
                if _FIELD.match(later):
                    break
            out[match.group(1)] = comment or ""
    return out


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("...").strip()


def _emit_value(name: str, value: Any, note: str, indent: int, lines: list[str], path: str = "") -> None:
    """One key: a nested dataclass, a list of dataclasses, or a scalar / flat list."""
    pad = "  " * indent
    if dataclasses.is_dataclass(value):
        lines.append(f"{pad}{name}:{note}")
        _emit(value, indent + 1, lines, path)
    elif isinstance(value, (list, tuple)) and value and all(dataclasses.is_dataclass(v) for v in value):
        lines.append(f"{pad}{name}:{note}")
        for item in value:
            sub: list[str] = []
            _emit(item, indent + 2, sub, path)
            sub[0] = f"{pad}  - {sub[0].lstrip()}"
            lines.extend(sub)
    elif isinstance(value, dict) and value and all(dataclasses.is_dataclass(v) for v in value.values()):
        lines.append(f"{pad}{name}:{note}")  # a mapping of small dataclasses: one line per key
        lines += [f"{pad}  {key}: {_scalar(config.to_dict(item))}" for key, item in value.items()]
    else:
        lines.append(f"{pad}{name}: {_scalar(config.to_dict(value))}{note}")


def _emit(obj: Any, indent: int, lines: list[str], path: str = "") -> None:
    """The fields of a config dataclass at ``path`` (dotted, e.g. ``finetune``), each with its comment.

    Keys that live in the ``study`` section (:data:`ecgstudy.config.DESIGN`) are left out; optimiser
    settings (:data:`ecgstudy.config.OPTIMISER_KEYS`) are written as the name of their preset.
    """
    comments = field_comments(type(obj))
    design = set(config.DESIGN.values())
    for f in dataclasses.fields(obj):
        dotted = f"{path}.{f.name}" if path else f.name
        if dotted in design:
            continue
        note = f"  # {comments[f.name]}" if comments.get(f.name) else ""
        if dotted in config.OPTIMISER_KEYS:
            preset = config.OPTIMISER_KEYS[dotted]
            lines.append(f"{'  ' * indent}{f.name}: {preset}  # optimiser preset (optimisers.{preset}): {comments.get(f.name, '')}")
            continue
        _emit_value(f.name, getattr(obj, f.name), note, indent, lines, dotted)


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` on ``base``: mappings merge key by key, anything else (lists included) replaces."""
    out = dict(base)
    for key, value in overlay.items():
        both_maps = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = merge(base[key], value) if both_maps else value
    return out


def to_sections(overlay: dict[str, Any]) -> dict[str, Any]:
    """An overlay written in params.yaml's layout (``study``, ``optimisers``) as plain section keys.

    ``study.<name>`` becomes its :data:`ecgstudy.config.DESIGN` key, ``optimisers.<preset>`` the optimiser
    key whose default preset that is (:data:`ecgstudy.config.OPTIMISER_KEYS`); other keys stay.
    """
    out = {k: v for k, v in overlay.items() if k not in config.LAYOUT}
    for name, value in (overlay.get("study") or {}).items():
        if name not in config.DESIGN:
            raise config.ConfigError(f"unknown key 'study.{name}'; valid: {sorted(config.DESIGN)}")
        out = merge(out, _nested(config.DESIGN[name], value))
    by_preset = {preset: dotted for dotted, preset in config.OPTIMISER_KEYS.items()}
    for preset, value in (overlay.get("optimisers") or {}).items():
        if preset not in by_preset:
            raise config.ConfigError(f"unknown optimiser preset 'optimisers.{preset}'; presets: {sorted(by_preset)}")
        out = merge(out, _nested(by_preset[preset], value))
    return out


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    """``a.b.c`` = v as ``{a: {b: {c: v}}}``."""
    for key in reversed(dotted.split(".")):
        value = {key: value}
    return value


def load_profile(name: str, root: Path | None = None) -> dict[str, Any]:
    """The overlay ``profiles/<name>.yaml`` (a mapping of params sections)."""
    folder = (root or repo_root()) / PROFILES_DIR
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise config.ConfigError(f"profile {name!r} not found at {path}; profiles: {known}")
    overlay = yaml.safe_load(path.read_text()) or {}
    if not isinstance(overlay, dict):
        raise config.ConfigError(f"{path}: a profile must be a mapping of params sections")
    unknown = sorted(set(overlay) - set(config.SECTIONS) - set(config.SCALARS) - set(config.LAYOUT))
    if unknown:
        raise config.ConfigError(f"{path}: unknown section(s) {unknown}; sections: {sorted(config.SECTIONS)}")
    return to_sections(overlay)


def _typed_sections(overlay: dict[str, Any]) -> dict[str, Any]:
    """Every section's typed config: the code's defaults with ``overlay`` (section keys) merged in."""
    out = {}
    for name in config.SECTIONS:
        cls = config.schema(name)
        out[name] = config.from_dict(cls, merge(config.to_dict(cls()), overlay.get(name) or {}), name)
    return out


def _lookup(typed: dict[str, Any], dotted: str) -> tuple[Any, str]:
    """(value, field comment) of ``section.key[.key]`` among the typed sections."""
    section, *keys = dotted.split(".")
    obj, comment = typed[section], ""
    for key in keys:
        comment = field_comments(type(obj)).get(key, "")
        obj = getattr(obj, key)
    return obj, comment


def render(overlay: dict[str, Any] | None = None) -> str:
    """params.yaml text: defaults with ``overlay`` applied, every key commented, validated.

    Layout: the seed; ``study`` (the values that define the study, :data:`ecgstudy.config.DESIGN`); one
    section per stage in pipeline order; ``optimisers`` (named presets the sections refer to).
    """
    overlay = to_sections(overlay or {})
    typed = _typed_sections(overlay)
    seed = overlay.get("seed", DEFAULT_SEED)
    lines = [*_HEADER, "", f"seed: {seed}  # master seed: simulation, splits, subsampling, initialisation, bootstrap", "",
             f"# {STUDY_HEADING}", "study:"]
    for name, dotted in config.DESIGN.items():
        value, comment = _lookup(typed, dotted)
        if isinstance(value, (list, tuple)) and value and all(dataclasses.is_dataclass(v) for v in value):
            fields = ", ".join(f"{k}: {c}" for k, c in field_comments(type(value[0])).items())
            lines += [f"  {name}:  # {comment} [{dotted}]", f"    # {fields}"]
            lines += [f"    - {_scalar(config.to_dict(item))}" for item in value]  # one line per item
            continue
        _emit_value(name, value, f"  # {comment} [{dotted}]", 1, lines, dotted)
    lines.append("")
    for name in config.SECTIONS:
        lines += [f"# {HEADINGS.get(name, name)}", f"{name}:"]
        _emit(typed[name], 1, lines, name)
        lines.append("")
    lines += [f"# {OPTIMISERS_HEADING}", "optimisers:"]
    for dotted, preset in config.OPTIMISER_KEYS.items():
        value, comment = _lookup(typed, dotted)
        _emit_value(preset, value, f"  # {comment} [{dotted}]", 1, lines, dotted)
    text = "\n".join(lines) + "\n"
    config.validate_all(config.resolve_layout(yaml.safe_load(text)))
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecgstudy.params_file", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", help="overlay profiles/<name>.yaml on the defaults (e.g. ptbxl)")
    parser.add_argument("--out", default="params.yaml", help="file written (relative to the repo root)")
    parser.add_argument("--check", action="store_true", help="only compare: exit 1 when the file differs")
    args = parser.parse_args(argv)
    root = repo_root()
    try:
        text = render(load_profile(args.profile, root) if args.profile else None)
    except config.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = root / args.out
    if args.check:
        same = out.is_file() and out.read_text() == text
        print(f"{out}: {'up to date' if same else 'differs from the generated parameters'}")
        return 0 if same else 1
    out.write_text(text)
    print(f"wrote {out}" + (f" (profile {args.profile})" if args.profile else " (defaults)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
