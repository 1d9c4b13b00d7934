"""Repository paths, resolved once from the repository root (the folder holding ``dvc.yaml``).

Every path a stage reads or writes is built from :func:`repo_root`, never from the working directory,
so notebooks run the same from JupyterLab, papermill or a test's temporary copy.
"""

from __future__ import annotations

import os
from pathlib import Path

_MARKER = "dvc.yaml"


def repo_root(start: str | Path | None = None) -> Path:
    """Return the repository root.

    Looks upward from ``start`` (default: the current directory) for a folder containing ``dvc.yaml``;
    ``ECGSTUDY_ROOT`` in the environment overrides the search. Falls back to the folder above the
    installed package (an editable install inside the repository).
    """
    env = os.environ.get("ECGSTUDY_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / _MARKER).is_file():
            return folder
    package_parent = Path(__file__).resolve().parent.parent
    if (package_parent / _MARKER).is_file():
        return package_parent
    raise FileNotFoundError(
        f"no {_MARKER} found in {here} or its parents; run from inside the ecgstudy repository "
        "or set ECGSTUDY_ROOT"
    )


def resolve(path: str | Path, root: Path | None = None) -> Path:
    """Resolve a params.yaml path: absolute paths stay, relative ones are taken from the repo root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (root or repo_root()) / p


def resource(name: str) -> Path:
    """Path of a file shipped in ``ecgstudy/data/resources`` (e.g. ``ptbxl_scp_statements.csv``)."""
    path = Path(__file__).resolve().parent / "data" / "resources" / name
    if not path.is_file():
        raise FileNotFoundError(f"bundled resource {name!r} not found at {path}")
    return path
