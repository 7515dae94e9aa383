"""Design rules that keep the code base in shape."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_pipelines_never_imports_prefect_or_flows() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(
            name for name in imported_modules(path) if name.split(".")[0] in {"prefect", "flows"}
        )
        for path in (REPO / "pipelines").rglob("*.py")
    }
    assert {file: names for file, names in offenders.items() if names} == {}


def test_only_marking_writes_output_pictures() -> None:
    """Every picture save in the library is in marking (outputs) or export (JPEG thumbnails):
    no code path writes an output picture without the watermark, XMP, C2PA and its record.
    Training writes its own diagnostics (validation grids, the loss curve) into the run folder
    under lora/, which is never published."""
    allowed = {
        "pipelines/marking/mark.py",
        "pipelines/export.py",
        "pipelines/training/trainer.py",
        "pipelines/training/export.py",
    }
    savers = set()
    for path in (REPO / "pipelines").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "save":
                savers.add(str(path.relative_to(REPO)))
    assert savers <= allowed, savers - allowed
    export = (REPO / "pipelines" / "export.py").read_text(encoding="utf-8")
    # The thumbnail, and the edge map of the input photo (no generated pixel in it): nothing else.
    assert export.count(".save(") == 2 and 'format="JPEG"' in export and "edges.save(" in export


def test_the_cpu_stage_never_imports_torch() -> None:
    """Its worker processes start in about a second only if the model libraries stay out."""
    import subprocess
    import sys

    script = "import sys, pipelines.cpu_stage; print(sorted({'torch', 'diffusers', 'prefect'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO)
    assert loaded.stdout.strip() == "[]"
