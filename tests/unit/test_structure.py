"""The shape of the code base: every module imports on its own (no import cycle), the
offline stages (aggregate, report, export, orchestration, the CLI) import no training
code, and the step loss is reduced on the training device (NCCL reduces only device
tensors)."""

import ast
import subprocess
import sys
from pathlib import Path

import torch
from support import ROOT

from sweep.train.trial import reduced_loss_sum

MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts)
    for p in (ROOT / "sweep").rglob("*.py")
    if p.stem not in ("__main__", "__init__")
)
# What a command that never trains must not pay for: the training stack, whether it comes
# directly or through a sweep module that imports it at its top.
TRAINING = ("torch", "deepspeed", "ray", "transformers", "datasets", "wandb", "sweep.train.model")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_every_module_imports_alone():
    # each module first, in a fresh set of sweep.* modules: an import cycle shows as an
    # ImportError for whichever module of the cycle comes first
    code = f"""
import importlib, sys
for name in {MODULES!r}:
    for m in [m for m in sys.modules if m == "sweep" or m.startswith("sweep.")]:
        del sys.modules[m]
    importlib.import_module(name)
print("ok")
"""
    r = _run(code)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
    assert len(MODULES) >= 15


def test_offline_stages_import_no_training_code():
    r = _run(
        "import sys\n"
        "import sweep.analysis.aggregate, sweep.report.sweep_report, sweep.export\n"
        "import sweep.analysis.records, sweep.run.orchestrate, sweep.cli\n"
        "import sweep.config.schedules, sweep.config.spec, sweep.analysis.metrics\n"
        "import sweep.analysis.intervals, sweep.run.study, sweep.analysis.findings\n"
        "import sweep.report.study_report, sweep.report.figures_sweep\n"
        f"print([m for m in {TRAINING!r} if m in sys.modules])"
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"


def test_the_cli_starts_without_scipy_stats():
    # half a second of every `sweep` start; the intervals use scipy.special's quantiles
    r = _run("import sys, sweep.cli\nprint('scipy.stats' in sys.modules)")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "False"


def test_step_loss_is_reduced_on_the_training_device():
    seen = []

    def all_reduce(t):
        seen.append(t.device)

    parts = [torch.tensor(2.0), torch.tensor(3.5)]  # losses as a CPU model returns them
    total = reduced_loss_sum(parts, 2, torch.device("meta"), all_reduce)
    assert seen == [torch.device("meta")]  # built where the engine trains, not on the CPU
    assert total.device == torch.device("meta") and total.dtype == torch.float64
    one = reduced_loss_sum(parts, 1, torch.device("cpu"), all_reduce)
    assert len(seen) == 1 and one.item() == 5.5  # one worker: no collective


# The pipeline from the bottom up: a module imports only from its own folder or a folder
# below it (within a folder, the cycle check keeps the imports one-way).
LAYERS = [
    ("sweep.config",),
    ("sweep.analysis",),
    ("sweep.train",),
    ("sweep.run",),
    ("sweep.export", "sweep.plan_file", "sweep.adapters"),
    ("sweep.report",),
    ("sweep.api",),
    ("sweep.cli", "sweep.__main__"),
]
# The only imports allowed to point up, each with its reason.
UPWARD = {}
# Inside a function only these may be imported (each with a comment saying why): heavy
# packages that the commands which never train must not pay for (dashboards: W&B's
# workspace API, about a second to import, for `sweep dashboard` alone; scipy.stats, half
# a second of every CLI start, for a study's width transfer alone), directly or through a
# sweep module that imports one of them at its top (``_heavy``).
DEFERRABLE = (
    "torch",
    "deepspeed",
    "ray",
    "transformers",
    "wandb",
    "datasets",
    "dashboards",
    "scipy.stats",
)


def _deferrable(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in DEFERRABLE)


def _layer(module: str) -> int:
    for k, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return k
    raise AssertionError(f"{module} is in no layer of LAYERS")


def _modules() -> dict[str, Path]:
    out = {}
    for path in (ROOT / "sweep").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, int, bool, bool]]:
    """(imported module, line, inside a function, has a comment) for each import in a
    file: ``from sweep.x import y`` counts as sweep.x.y when that is a module."""
    lines = path.read_text().splitlines()
    tree = ast.parse(path.read_text())
    deferred = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
        for n in ast.walk(f)
    }
    typing_only = {  # `if TYPE_CHECKING:` imports never run
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and getattr(block.test, "id", None) == "TYPE_CHECKING"
        for n in ast.walk(block)
    }
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from sweep.train import data` imports sweep.train.data (its package's
            # __init__ is empty)
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [n for n in subs if n in modules] or [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        said = "#" in lines[node.lineno - 1] or lines[node.lineno - 2].strip().startswith("#")
        for n in names:
            out.append((n, node.lineno, id(node) in deferred, said))
    return out


def _import_graph() -> dict[str, set[str]]:
    """sweep's modules and the sweep modules each imports anywhere in its text (at the
    top or inside a function: a deferred import hides a cycle from import time only)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = {n for n, *_ in _imports(path, modules) if n in modules}
        graph[name] = {d for d in deps if d != name and d != "sweep"}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_even_through_deferred_imports():
    graph = _import_graph()
    assert {"sweep.analysis.findings", "sweep.report.study_report"} <= set(graph)
    assert _cycles(graph) == []
    # the graph is read right: a cycle made up here is found
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_imports_point_down_the_pipeline():
    graph = _import_graph()
    up = sorted(
        (a, b)
        for a, deps in graph.items()
        if a != "sweep"
        for b in deps
        if _layer(b) > _layer(a) and (a, b) not in UPWARD
    )
    assert up == []
    assert all(_layer(b) > _layer(a) for a, b in UPWARD)  # the list holds no stale entry
    assert _layer("sweep.config.spec") < _layer("sweep.report.figures_sweep")


def _heavy(modules: dict[str, Path]) -> set[str]:
    """The sweep modules that load a DEFERRABLE package when imported: through their own
    top-level imports or another heavy sweep module's."""
    tops = {
        name: {n for n, _, deferred, _ in _imports(path, modules) if not deferred}
        for name, path in modules.items()
    }
    heavy: set[str] = set()
    while True:
        more = {
            name
            for name, deps in tops.items()
            if name not in heavy and any(_deferrable(d) or d in heavy for d in deps)
        }
        if not more:
            return heavy
        heavy |= more


def test_function_level_imports_are_heavy_packages_with_a_reason():
    modules = _modules()
    heavy = _heavy(modules)
    assert "sweep.train.model" in heavy and "sweep.config.spec" not in heavy
    bad = []
    for path in modules.values():
        for imported, line, deferred, said in _imports(path, modules):
            if not deferred:
                continue
            if not said or (not _deferrable(imported) and imported not in heavy):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {imported}")
    assert bad == [], "\n".join(bad)


def test_benchmarks_and_scripts_import_names_that_exist():
    # they run by hand, not in the suite: a module moved or a name renamed must not
    # leave one of them broken
    import importlib

    missing = []
    for path in [*(ROOT / "bench").glob("*.py"), *(ROOT / "scripts").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sweep"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    name = f"{node.module}.{alias.name}"
                    if not hasattr(module, alias.name) and name not in _modules():
                        missing.append(f"{path.name}: {name}")
    assert missing == []
