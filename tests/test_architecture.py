"""The floor plan: layers, no import circles, and dvc.yaml deps that cover what each stage imports.

Imports are read statically (ast) from the package's source, so these tests see every import, including
those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from ecgstudy import config
from ecgstudy.paths import repo_root

ROOT = repo_root()
PACKAGE = ROOT / "ecgstudy"
#: Stages in DAG order (a stage may read earlier stages' outputs, never import any stage's code).
STAGE_ORDER = ["curate", "pretrain", "finetune", "transfer", "latent", "saliency", "evaluate", "report"]
#: Layers and what each may import (besides itself and the top-level plumbing: paths, config).
LAYERS = {
    "data": set(),
    "simulate": {"data"},
    "models": set(),
    "engine": {"data", "models"},
    "objectives": {"data", "models", "engine"},
    "plots": {"data"},
    "apply": {"data", "models", "engine"},
    "stages": {"data", "simulate", "models", "engine", "objectives", "plots", "apply"},
}
#: Modules every layer may use: the package root, repository paths, the typed params, progress bars.
PLUMBING = {"ecgstudy", "ecgstudy.paths", "ecgstudy.config", "ecgstudy.progress"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """ecgstudy modules imported by module ``name`` (``from x import y`` counts y when y is a module)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    typing_only = {id(n) for guard in ast.walk(tree) if isinstance(guard, ast.If) and _is_type_checking(guard.test)
                   for stmt in guard.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue  # `if TYPE_CHECKING:` imports exist for annotations only, never at run time
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in MODULES}
    return out - {name}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


GRAPH = {name: imports_of(name) for name in MODULES}


def closure(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += list(GRAPH[name])
        parent = name.rpartition(".")[0]
        if parent in MODULES:  # importing a submodule runs its package's __init__
            todo.append(parent)
    return seen


def layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_no_import_circles():
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    # a package importing its own submodules (re-exports) is not a circle between modules
    real = [c for c in cycles if not all(m.startswith(min(c, key=len)) for m in c)]
    assert not real, real


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports_only_its_layer_and_below(name):
    mine = layer(name)
    if mine is None:
        return  # plumbing (cli, config, params_file, run_notebook, paths) sits above every layer
    allowed = LAYERS[mine] | {mine}
    bad = {m for m in GRAPH[name] if m not in PLUMBING and layer(m) not in allowed}
    assert not bad, f"{name} ({mine}) imports {sorted(bad)}"


def stage_module(stage: str) -> str:
    return f"ecgstudy.stages.{stage}"


@pytest.mark.parametrize("stage", STAGE_ORDER)
def test_no_stage_imports_another_stage(stage):
    shared = {"ecgstudy.stages", "ecgstudy.stages.outputs", "ecgstudy.stages.common", "ecgstudy.stages.artifacts"}
    own = stage_module(stage)
    others = {m for m in closure(own) if m.startswith("ecgstudy.stages.") and m not in shared
              and not (m == own or m.startswith(own + "."))}
    assert not others, f"{stage} imports {sorted(others)}"


def covered(module: str, deps: list[str]) -> bool:
    path = MODULES[module].relative_to(ROOT).as_posix()
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def docstring_only(module: str) -> bool:
    """A package ``__init__`` holding nothing but its docstring (editing it changes no behaviour)."""
    body = ast.parse(MODULES[module].read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def notebook_imports(stage: str) -> set[str]:
    tree = ast.parse((ROOT / "notebooks" / f"{stage}.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ecgstudy"):
            out |= {t for t in [node.module] + [f"{node.module}.{a.name}" for a in node.names] if t in MODULES}
    return out


@pytest.mark.parametrize("stage", STAGE_ORDER)
def test_dvc_deps_cover_every_module_the_stage_imports(stage):
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    needed = set().union(*(closure(m) for m in notebook_imports(stage)))
    plumbing = {"ecgstudy", "ecgstudy.config", "ecgstudy.paths"}  # the runner's own code, same for every stage
    missing = sorted(m for m in needed - plumbing if not covered(m, spec["deps"]) and not docstring_only(m))
    assert not missing, f"dvc.yaml stage {stage!r} misses deps for {missing}"


def test_editing_finetune_code_does_not_touch_pretrain():
    deps = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["pretrain"]["deps"]
    assert not covered("ecgstudy.stages.finetune", deps) and not covered("ecgstudy.stages.evaluate", deps)


def test_dvc_yaml_tracks_exactly_the_params_each_stage_reads():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(config.STAGE_SECTIONS) == set(STAGE_ORDER)
    _, raw = config.load_raw(ROOT / "params.yaml")
    for stage in config.STAGE_SECTIONS:
        assert set(stages[stage]["params"]) == config.tracked_keys(stage, raw), stage
        assert stages[stage]["cmd"] == f"bin/stage {stage}"  # the project's Python however DVC is started


def test_statistics_settings_rerun_no_training():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    training = ("pretrain", "finetune", "transfer")
    assert all("evaluate" not in {p.split(".")[0] for p in stages[s]["params"]} for s in training)
    assert all("report" not in {p.split(".")[0] for p in stages[s]["params"]} for s in training)


def test_every_output_but_the_metrics_is_cached():
    """DVC keeps no run-cache entry for a stage with an uncached output other than a metric or plot, so such a
    stage reruns in a fresh clone or a temporary experiment even when nothing it depends on changed."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    uncached = [(name, path) for name, spec in stages.items() for out in spec.get("outs", []) if isinstance(out, dict)
                for path, options in out.items() if (options or {}).get("cache") is False]
    assert not uncached, f"uncached outputs (make them cached, or metrics): {uncached}"
