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
    "simulate": "the built-in simulated cohort (curate stage, when data.source is simulated); ranges: ecgstudy/simulate/SOURCES.md",
    "curate": "harmonisation, quality checks and splits (curate stage)",
    "pretrain": "pretraining objectives x encoders compared; the kept encoder feeds every later stage (pretrain stage)",
    "finetune": "multi-label diagnosis: pretrained vs scratch vs linear probes at several label fractions (finetune stage)",
    "transfer": "rare-disease transfer with small case-control sets (transfer stage)",
    "latent": "embeddings, UMAP and k-NN probe (latent stage)",
    "saliency": "attribution maps, scored against the simulator's signature masks when present (saliency stage)",
    "report": "the one-page HTML report (report stage)",
}
_HEADER = [
    "# ecgstudy study parameters: one section per stage (+ seed, data). Every value is a study choice;",
    "# the reason for each is beside it. Change one with `dvc exp run -S section.key=value`.",
    "# Unknown or mistyped keys fail at once, naming the key and the valid ones.",
]
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


def _emit(obj: Any, indent: int, lines: list[str]) -> None:
    comments = field_comments(type(obj))
    pad = "  " * indent
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        note = f"  # {comments[f.name]}" if comments.get(f.name) else ""
        if dataclasses.is_dataclass(value):
            lines.append(f"{pad}{f.name}:{note}")
            _emit(value, indent + 1, lines)
        elif isinstance(value, (list, tuple)) and value and all(dataclasses.is_dataclass(v) for v in value):
            lines.append(f"{pad}{f.name}:{note}")
            for item in value:
                sub: list[str] = []
                _emit(item, indent + 2, sub)
                sub[0] = f"{pad}  - {sub[0].lstrip()}"
                lines.extend(sub)
        else:
            lines.append(f"{pad}{f.name}: {_scalar(config.to_dict(value))}{note}")


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` on ``base``: mappings merge key by key, anything else (lists included) replaces."""
    out = dict(base)
    for key, value in overlay.items():
        both_maps = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = merge(base[key], value) if both_maps else value
    return out


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
    unknown = sorted(set(overlay) - set(config.SECTIONS) - set(config.SCALARS))
    if unknown:
        raise config.ConfigError(f"{path}: unknown section(s) {unknown}; sections: {sorted(config.SECTIONS)}")
    return overlay


def render(overlay: dict[str, Any] | None = None) -> str:
    """params.yaml text: defaults with ``overlay`` applied, every key commented, validated."""
    overlay = overlay or {}
    seed = overlay.get("seed", DEFAULT_SEED)
    lines = [*_HEADER, "", f"seed: {seed}  # master seed: simulation, splits, subsampling, initialisation, bootstrap", ""]
    for name in config.SECTIONS:
        cls = config.schema(name)
        defaults = config.to_dict(cls())
        obj = config.from_dict(cls, merge(defaults, overlay.get(name) or {}), name)
        lines += [f"# {HEADINGS.get(name, name)}", f"{name}:"]
        _emit(obj, 1, lines)
        lines.append("")
    text = "\n".join(lines)
    config.validate_all(yaml.safe_load(text))
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
