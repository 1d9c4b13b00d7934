"""ecgstudy.progress: widget bars in an interactive notebook, text bars under papermill, CI and terminals."""

from __future__ import annotations

import os
import sys

import jupytext
import papermill
import pytest
from jupyter_client.manager import start_new_kernel

from ecgstudy import progress

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", progress.MODE_ENV) and not k.startswith("JPY_")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def test_outside_a_kernel_the_bar_is_text(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(progress.MODE_ENV, raising=False)
    assert progress.bar_kind() == "text"
    bar = progress.tqdm(total=3, disable=True)
    assert type(bar).__module__ == "tqdm.std"
    bar.close()


def test_the_environment_overrides_the_choice(monkeypatch):
    monkeypatch.setenv(progress.MODE_ENV, "notebook")
    assert progress.bar_kind() == "notebook"
    monkeypatch.setenv(progress.MODE_ENV, "text")
    assert progress.bar_kind() == "text"
    monkeypatch.setenv(progress.MODE_ENV, "widgets")
    with pytest.raises(ValueError, match="ECGSTUDY_PROGRESS"):
        progress.bar_kind()


@pytest.fixture(scope="module")
def kernel():
    manager, client = start_new_kernel(kernel_name="python3", env=_clean_env())
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _run(client, code: str, allow_stdin: bool) -> str:
    """Execute ``code`` as a front end would (``allow_stdin``) and return its stdout."""
    out: list[str] = []

    def collect(msg):
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = client.execute_interactive(code, allow_stdin=allow_stdin, output_hook=collect, timeout=60)
    assert reply["content"]["status"] == "ok", "".join(out)
    return "".join(out)


CODE = (
    "from ecgstudy.progress import bar_kind, tqdm\n"
    "bar = tqdm(total=2, desc='x')\nbar.update(2)\nbar.close()\n"
    "print(bar_kind(), type(bar).__module__)\n"
)


def test_a_front_end_gets_a_widget_bar(kernel):
    # JupyterLab, Notebook and VS Code send cells with allow_stdin=True
    assert _run(kernel, CODE, allow_stdin=True).split()[-2:] == ["notebook", "tqdm.notebook"]


def test_a_batch_client_gets_a_text_bar_in_the_same_kernel(kernel):
    # papermill / nbclient send cells with allow_stdin=False
    assert _run(kernel, CODE, allow_stdin=False).split()[-2:] == ["text", "tqdm.std"]


def test_papermill_output_holds_text_bars_not_widgets(tmp_path, monkeypatch):
    for key in ("CI", progress.MODE_ENV):
        monkeypatch.delenv(key, raising=False)
    source = "# %%\nfrom ecgstudy.progress import tqdm\nfor _ in tqdm(range(5), desc='bar', mininterval=0):\n    pass\n"
    jupytext.write(jupytext.reads(source, fmt="py:percent"), tmp_path / "in.ipynb")
    result = papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"),
                                        kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    outputs = [o for cell in result.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not any(WIDGET_MIME in o.get("data", {}) for o in outputs)
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert "bar: 100%" in stderr and "5/5" in stderr
