"""Progress bars: a widget bar in an interactive notebook, plain text everywhere else.

``from ecgstudy.progress import tqdm`` is a drop-in for ``from tqdm import tqdm``. It returns

- ``tqdm.notebook.tqdm`` (an ipywidgets bar) when the code runs in a Jupyter kernel that an interactive
  front end (JupyterLab, Notebook, VS Code) is driving, and
- the plain-text ``tqdm.std.tqdm`` otherwise: a terminal, ``dvc repro``, papermill and CI, so that the
  executed notebooks in ``reports/notebooks/`` and the logs hold readable text lines, not widget state.

How an interactive front end is told apart from papermill: both run an IPython kernel, but papermill
(nbclient) sends every cell with ``allow_stdin=False`` (a batch run cannot answer ``input()``), while the
Jupyter front ends allow it. ``tqdm.auto`` alone cannot see that difference and would put widgets into
papermill's output. ``CI`` in the environment always means text. ``ECGSTUDY_PROGRESS=text|notebook|off``
overrides the choice (``auto``, the default, decides as above; ``off`` draws nothing: the worker processes
of :mod:`ecgstudy.engine.jobs`, whose bars would interleave).
"""

from __future__ import annotations

import os
from typing import Any

from tqdm.std import tqdm as text_tqdm

#: Environment variable overriding the bar kind: ``auto`` (default), ``text`` or ``notebook``.
MODE_ENV = "ECGSTUDY_PROGRESS"
_MODES = ("auto", "text", "notebook", "off")


def _interactive_kernel() -> bool:
    """True inside an IPython kernel whose current cell came from a front end that accepts input."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None:  # plain python, IPython terminal, no kernel
        return False
    return bool(getattr(kernel, "_allow_stdin", False))  # False under papermill / nbclient


def _widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def bar_kind() -> str:
    """``"notebook"``, ``"text"`` or ``"off"``: the kind of bar :func:`tqdm` creates here and now."""
    mode = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if mode not in _MODES:
        raise ValueError(f"{MODE_ENV}={mode!r}: expected one of {', '.join(_MODES)}")
    if mode != "auto":
        return mode
    if os.environ.get("CI"):
        return "text"
    return "notebook" if _interactive_kernel() and _widgets_available() else "text"


def tqdm(*args: Any, **kwargs: Any) -> text_tqdm:
    """A tqdm bar of the kind :func:`bar_kind` chooses; same arguments as ``tqdm.tqdm``."""
    if bar_kind() == "notebook":
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm(*args, **kwargs)
    if bar_kind() == "off":
        kwargs["disable"] = True
    return text_tqdm(*args, **kwargs)
