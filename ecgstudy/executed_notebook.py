"""The executed copy of a stage notebook, made reproducible: the same run gives the same bytes.

``reports/notebooks/<stage>.ipynb`` is a DVC output, so anything in it that changes between two runs of the
same study (clock times, progress bars, the folder the repository sits in) would change ``dvc.lock`` after a
faithful ``dvc repro -f``. :func:`normalise` removes exactly that, and nothing the notebook shows:

- papermill's and the kernel's clock metadata (run and cell start / end times, durations, ``execution``
  timestamps) and papermill's absolute input / output paths;
- random cell ids (each conversion from the ``.py`` notebook draws new ones): ``cell-<index>`` instead;
- progress-bar redraws in stream outputs (lines holding a carriage return, as tqdm's text bars write
  them); the live console log under ``dvc repro`` still shows the bars, and warnings stay;
- the repository's absolute path in text outputs, shown relative to the repository root instead.

Wall-clock times of a run are in ``reports/timings/<stage>.json`` (untracked; ``ecgstudy.stages.outputs``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

#: papermill's clock and location metadata, at notebook and cell level.
_PAPERMILL_KEYS = ("start_time", "end_time", "duration", "input_path", "output_path")
#: Output data kinds that hold text (others, such as image/png, are base64 of deterministic bytes).
_TEXT_KINDS = ("text/plain", "text/html", "text/markdown", "text/latex")


def normalise(nb: Any, root: Path) -> Any:
    """Strip run-specific content from an executed notebook (an ``nbformat`` node or plain dict), in place.

    ``root`` is the repository root whose absolute path is shown relative in text outputs. Returns ``nb``.
    """
    _drop(nb.get("metadata", {}).get("papermill", {}), _PAPERMILL_KEYS)
    prefixes = sorted({str(root), str(Path(root).resolve())}, key=len, reverse=True)
    for index, cell in enumerate(nb.get("cells", [])):
        if "id" in cell:
            cell["id"] = f"cell-{index}"
        meta = cell.get("metadata", {})
        meta.pop("execution", None)
        _drop(meta.get("papermill", {}), _PAPERMILL_KEYS)
        if "outputs" in cell:
            cell["outputs"] = [out for out in (_normalise_output(o, prefixes) for o in cell["outputs"]) if out]
    return nb


def _drop(mapping: dict, keys: tuple[str, ...]) -> None:
    for key in keys:
        mapping.pop(key, None)


def _normalise_output(output: Any, prefixes: list[str]) -> Any:
    """One output without progress redraws and machine paths; None when nothing is left of a stream."""
    kind = output.get("output_type")
    if kind == "stream":
        text = _without_redraws(_joined(output.get("text", "")))
        if not text.strip():
            return None
        output["text"] = _relative(text, prefixes)
    elif kind in ("display_data", "execute_result"):
        data = output.get("data", {})
        for key in _TEXT_KINDS:
            if key in data:
                data[key] = _relative(_joined(data[key]), prefixes)
    elif kind == "error":
        output["traceback"] = [_relative(line, prefixes) for line in output.get("traceback", [])]
        output["evalue"] = _relative(output.get("evalue", ""), prefixes)
    return output


def _joined(text: str | list[str]) -> str:
    return text if isinstance(text, str) else "".join(text)


def _without_redraws(text: str) -> str:
    """``text`` without the lines (ended by ``\\n``) that hold a carriage return: a bar redrawing itself."""
    return "".join(line for line in re.split(r"(?<=\n)", text) if "\r" not in line)


def _relative(text: str, prefixes: list[str]) -> str:
    """``text`` with ``<root>/x`` shown as ``x`` and a bare ``<root>`` as ``.``."""
    for prefix in prefixes:
        text = re.sub(re.escape(prefix) + r"(/|(?![\w.-]))", lambda m: "" if m.group(1) else ".", text)
    return text
