"""Design rules that keep the code base in shape: the layers of pyproject.toml, Prefect only in
flows, pictures written only by marking, a CPU stage without torch, functions read in one screen."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Where each installed name lives in the repository (pyproject.toml's package-dir).
FOLDERS = {"visuels.flows": REPO / "flows", "visuels": REPO / "pipelines"}
# A function a newcomer reads in one screen: longer ones were split into named steps (the
# maintainers' review, §2.13), and this keeps them so.
MOST_FUNCTION_LINES = 80


def modules() -> dict[str, Path]:
    """Every module of the library by its installed name."""
    found = {}
    for root, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            name = ".".join([root, *parts[:-1]] if parts[-1] == "__init__" else [root, *parts])
            if root == "visuels" and name.startswith("visuels.flows"):
                continue
            found[name] = path
    return found


def imported_modules(path: Path) -> set[str]:
    """What a module imports, at the top or inside functions, for type checking or at run time."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def layers() -> list[list[str]]:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["visuels"]["layers"]
    return [[name.strip() for name in line.split("|")] for line in declared]


def _place(module: str, contract: list[list[str]]) -> tuple[int, str] | None:
    for level, packages in enumerate(contract):
        for package in packages:
            if module == package or module.startswith(package + "."):
                return level, package
    return None


def layer_violations(graph: dict[str, set[str]], contract: list[list[str]]) -> list[str]:
    """Each import of a package of the same line or of a line above: ``importer -> imported``."""
    found = []
    for importer, imported in sorted(graph.items()):
        here = _place(importer, contract)
        for name in sorted(imported):
            there = _place(name, contract)
            if here is None or there is None or there[1] == here[1]:
                continue
            if there[0] <= here[0]:
                found.append(f"{importer} -> {name}")
    return found


def test_every_module_is_in_a_layer() -> None:
    contract = layers()
    assert [name for name in modules() if name != "visuels" and _place(name, contract) is None] == []


def test_each_layer_imports_only_the_layers_below_it() -> None:
    graph = {name: imported_modules(path) for name, path in modules().items()}
    assert layer_violations(graph, layers()) == []


def test_an_upward_import_breaks_the_contract() -> None:
    """The check itself: a record module importing the engine, two review siblings, are caught."""
    graph = {
        "visuels.record.ledger": {"visuels.engine.claims"},
        "visuels.review.report": {"visuels.training.run", "visuels.planning.plan"},
        "visuels.engine.run": {"visuels.engine.claims", "visuels.planning.plan"},
    }
    assert layer_violations(graph, layers()) == [
        "visuels.record.ledger -> visuels.engine.claims",
        "visuels.review.report -> visuels.training.run",
    ]


def test_only_flows_import_prefect() -> None:
    offenders = {
        name: sorted(imported for imported in imported_modules(path) if imported.split(".")[0] == "prefect")
        for name, path in modules().items()
        if not name.startswith("visuels.flows")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_only_marking_writes_output_pictures() -> None:
    """Every picture save in the library is in marking (outputs, and their report thumbnails,
    tagged too) or export (the edge map of an input photo): no code path writes an output picture
    without the watermark, XMP, C2PA and its record. Training writes its own diagnostics
    (validation grids, the loss curve) into the run folder under lora/, which is never published,
    and its flow shows small copies of them in memory. The layered working file (PSD) keeps the
    watermark in its picture layer and says in its XMP that it is a working file; what is
    exported from it goes through finalize. The studio's template preview is drawn in memory over
    a reference picture, no generated pixel in it."""
    allowed = {
        "visuels.review.layers",
        "visuels.studio.template_previews",
        "visuels.marking.mark",
        "visuels.engine.export",
        "visuels.training.trainer",
        "visuels.training.export",
        "visuels.flows.train_lora",
    }
    savers = set()
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "save":
                savers.add(name)
    assert savers <= allowed, savers - allowed
    export = modules()["visuels.engine.export"].read_text(encoding="utf-8")
    # The edge map of the input photo (no generated pixel in it): nothing else.
    assert export.count(".save(") == 1 and "edges.save(" in export


def test_the_cpu_stage_never_imports_torch() -> None:
    """Its worker processes start in about a second only if the model libraries stay out."""
    script = "import sys, visuels.engine.cpu_stage; print(sorted({'torch', 'diffusers', 'prefect'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO)
    assert loaded.stdout.strip() == "[]"


def test_every_function_reads_in_one_screen() -> None:
    longer = [
        f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in modules().values()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MOST_FUNCTION_LINES
    ]
    assert longer == []
