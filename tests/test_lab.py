"""`make lab`: the venv's JupyterLab serves the stage notebooks as notebooks and opens them in the notebook view.

Starts the JupyterLab of the running interpreter's environment (the venv) headless on a free localhost
port, with a token and with the user's own Jupyter config, data and settings folders replaced by empty
ones (what a fresh account sees), and asks its REST API what a browser would get.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jupytext
import pytest

from ecgstudy.paths import repo_root

ROOT = repo_root()
SHIPPED = ROOT / "lab" / "overrides.json"
INSTALLED = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
JUPYTER = Path(sys.executable).parent / "jupyter"
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.py"))
DOCMANAGER = "@jupyterlab/docmanager-extension:plugin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    def __init__(self, url: str, token: str, root: Path):
        self.url, self.token, self.root = url, token, root

    def get(self, path: str) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, path: str) -> dict:
        status, body = self.get(path)
        assert status == 200, f"GET {path}: HTTP {status}: {body[:500]!r}"
        return json.loads(body)

    def put(self, path: str, model: dict) -> dict:
        request = urllib.request.Request(self.url + path, data=json.dumps(model).encode(), method="PUT",
                                         headers={"Authorization": f"token {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def _serve(root: Path, home: Path):
    """Start the venv's JupyterLab on ``root`` as `make lab` does, headless; yield a :class:`Lab`."""
    assert INSTALLED.is_file(), (
        f"{INSTALLED} is missing: the project's JupyterLab settings are not installed in this environment; "
        "run `make lab-settings` (make venv / make test / make lab do it)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "user-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
    )
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        str(JUPYTER), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]
    log_file = home / "server.log"
    with log_file.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        server = Lab(f"http://127.0.0.1:{port}", token, root)
        try:
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"jupyter lab exited ({proc.returncode}):\n{log_file.read_text()[-3000:]}")
                try:
                    if server.get("/api/status")[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"jupyter lab did not answer in 90 s:\n{log_file.read_text()[-3000:]}")
                time.sleep(0.25)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The venv's JupyterLab on the repository, with an empty Jupyter home (what a fresh account sees)."""
    yield from _serve(ROOT, tmp_path_factory.mktemp("jupyter_home"))


@pytest.fixture(scope="module")
def scratch_lab(tmp_path_factory):
    """The same server on a copy of the notebooks and the project's jupytext.toml (for saving)."""
    root = tmp_path_factory.mktemp("scratch_repo")
    shutil.copytree(ROOT / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".*"))
    shutil.copy2(ROOT / "jupytext.toml", root / "jupytext.toml")
    yield from _serve(root, tmp_path_factory.mktemp("jupyter_home"))


def test_the_venv_carries_the_shipped_settings():
    assert json.loads(INSTALLED.read_text()) == json.loads(SHIPPED.read_text()), (
        f"{INSTALLED} differs from {SHIPPED}: run `make lab-settings`"
    )


def test_stage_and_tour_notebooks_exist():
    assert {"curate.py", "pretrain.py", "finetune.py", "tour.py"} <= set(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_is_served_as_a_notebook(lab, name):
    model = lab.json(f"/api/contents/notebooks/{name}?type=notebook&content=1")
    assert model["type"] == "notebook" and model["format"] == "json"
    cells = model["content"]["cells"]
    expected = jupytext.read(ROOT / "notebooks" / name)
    assert [c["cell_type"] for c in cells] == [c.cell_type for c in expected.cells]
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
    assert model["content"]["metadata"]["jupytext"]["text_representation"]["format_name"] == "percent"


def test_the_folder_listing_shows_notebooks_and_the_executed_copies(lab):
    listing = lab.json("/api/contents/notebooks?content=1")
    served = {item["name"]: item["type"] for item in listing["content"]}
    assert {name: served.get(name) for name in NOTEBOOKS} == {name: "notebook" for name in NOTEBOOKS}
    root = {item["name"]: item["type"] for item in lab.json("/api/contents?content=1")["content"]}
    assert root.get("notebooks") == "directory" and root.get("reports") == "directory"
    if (ROOT / "reports" / "notebooks").is_dir():  # the pipeline's executed notebooks (absent before a run)
        executed = lab.json("/api/contents/reports/notebooks?content=1")["content"]
        on_disk = {p.name for p in (ROOT / "reports" / "notebooks").glob("*.ipynb")}
        assert {i["name"] for i in executed if i["type"] == "notebook"} >= on_disk


def test_default_viewer_of_python_files_is_the_jupytext_notebook(lab):
    served = lab.json(f"/lab/api/settings/{DOCMANAGER}")
    default = served["schema"]["properties"]["defaultViewers"]["default"]
    assert default.get("python") == "Jupytext Notebook"
    assert "python" not in json.loads(served["raw"] or "{}").get("defaultViewers", {})  # no user setting involved


def test_the_viewer_name_is_the_factory_jupytext_registers(lab):
    status, body = lab.get("/lab")
    assert status == 200
    config = re.search(rb'<script id="jupyter-config-data" type="application/json">(.*?)</script>', body, re.S)
    page = json.loads(config[1])
    extensions = {e["name"] for e in page["federated_extensions"]}
    assert "jupyterlab-jupytext" in extensions and "@jupyter-widgets/jupyterlab-manager" in extensions
    assert not any("jupytext" in d for d in page["disabledExtensions"])
    static = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "jupyterlab-jupytext" / "static"
    viewer = json.loads(SHIPPED.read_text())[DOCMANAGER]["defaultViewers"]["python"]
    assert any(f'FACTORY="{viewer}"' in js.read_text(errors="replace") for js in static.glob("*.js"))


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_lab_installs_the_settings_and_starts_at_the_repo_root():
    venv = Path(sys.prefix)
    dry = subprocess.run(["make", "-n", "--no-print-directory", "lab", f"VENV={venv}"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    command = [line for line in dry.splitlines() if line.startswith("jupyter lab")]
    assert command, dry
    assert f'--ServerApp.root_dir="{ROOT}"' in command[0] and command[0].endswith(" notebooks/tour.py")
    assert (ROOT / "notebooks" / "tour.py").is_file()  # the file the browser opens (/lab/tree/notebooks/tour.py)
    assert ("--allow-root" in command[0]) == (os.geteuid() == 0)
    rule = subprocess.run(["make", "-n", "--no-print-directory", "-W", "lab/overrides.json", "lab-settings",
                           f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert f"cp lab/overrides.json {venv}/share/jupyter/lab/settings/overrides.json" in rule


def test_saving_from_the_lab_rewrites_nothing_but_the_kernel_name(scratch_lab):
    """Open, run, save, as JupyterLab does: the kernel sets the kernelspec and language_info metadata, the
    project's jupytext.toml keeps jupytext's version lines out, and the .py file comes back unchanged (but
    for the kernel's display name where the header names another one)."""
    specs = scratch_lab.json("/api/kernelspecs")
    kernel = specs["kernelspecs"][specs["default"]]["spec"]
    for name in NOTEBOOKS:
        original = (ROOT / "notebooks" / name).read_text()
        notebook = scratch_lab.json(f"/api/contents/notebooks/{name}?type=notebook&content=1")["content"]
        notebook["metadata"]["kernelspec"] = {"name": specs["default"], "display_name": kernel["display_name"],
                                              "language": kernel["language"]}
        notebook["metadata"]["language_info"] = {"name": "python", "version": "3.11", "file_extension": ".py"}
        scratch_lab.put(f"/api/contents/notebooks/{name}", {"type": "notebook", "format": "json", "content": notebook})
        saved = (scratch_lab.root / "notebooks" / name).read_text()
        expected = re.sub(r"(?m)^#     display_name: .*$", f"#     display_name: {kernel['display_name']}", original, 1)
        assert saved == expected, name


def test_the_tour_names_the_kernel_the_venv_installs(lab):
    specs = lab.json("/api/kernelspecs")
    header = jupytext.read(ROOT / "notebooks" / "tour.py").metadata["kernelspec"]
    assert header["name"] == specs["default"]
    assert header["display_name"] == specs["kernelspecs"][specs["default"]]["spec"]["display_name"]
