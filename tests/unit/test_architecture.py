"""Imports go downward: CLI -> pipeline and stages -> recipe, data, run records -> utilities. Read from the source
(every import statement, also those inside functions), so a cycle or an upward import fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "iris_recipes"

# Layer of each module, by its dotted name or the longest matching prefix; a module may import its own layer or
# lower ones. A new module must be placed here.
LAYERS = {
    "cli": ("iris_recipes.cli", "iris_recipes.__main__", "iris_recipes.commands"),
    "stages": (
        "iris_recipes.pipeline",
        "iris_recipes.follow",
        "iris_recipes.run_options",
        "iris_recipes.stages",
        "iris_recipes.launch_plan",
        "iris_recipes.train",
        "iris_recipes.lora_merge",
        "iris_recipes.export",
        "iris_recipes.evaluate",
        "iris_recipes.card",
        "iris_recipes.compare",
        "iris_recipes.sweep",
        "iris_recipes.space_variants",
        "iris_recipes.space_bundle",
    ),
    "recipe": (
        "iris_recipes.recipe",
        "iris_recipes.data",
        "iris_recipes.models",
        "iris_recipes.rundir",
        "iris_recipes.locate",
        "iris_recipes.track",
        "iris_recipes.nodes",
        "iris_recipes.objectives",
    ),
    "utilities": (
        "iris_recipes.errors",
        "iris_recipes.fsutil",
        "iris_recipes.paths",
        "iris_recipes.hostinfo",
        "iris_recipes.chat_families",
        "iris_recipes.library_log",
        "iris_recipes",  # the package itself (__version__), not what is under it
    ),
}
ORDER = list(LAYERS)  # highest first

# Inside the stages layer: the stage table (stages.py) and what walks it call the stages' work, never the reverse,
# and eval and export know nothing of the card (the card stage reads what they recorded).
STAGE_TABLE = ("iris_recipes.stages", "iris_recipes.pipeline", "iris_recipes.sweep")
NOT_IMPORTED = {
    "iris_recipes.train": STAGE_TABLE,
    "iris_recipes.lora_merge": STAGE_TABLE,
    "iris_recipes.export": (*STAGE_TABLE, "iris_recipes.card"),
    "iris_recipes.evaluate": (*STAGE_TABLE, "iris_recipes.card"),
    "iris_recipes.card": STAGE_TABLE,
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    best = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if module == prefix or (prefix != "iris_recipes" and module.startswith(prefix + ".")):
                if best is None or len(prefix) > len(best[1]):
                    best = (layer, prefix)
    return best[0] if best else None


def imported(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) of every package module `path` imports; `from pkg import mod` counts as importing `pkg.mod`."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import; use the absolute name"
            for a in node.names:
                candidate = f"{node.module}.{a.name}"
                as_path = root / candidate.replace(".", "/")
                is_module = as_path.with_suffix(".py").is_file() or as_path.is_dir()
                out.append((node.lineno, candidate if is_module else node.module))
    return [(line, name) for line, name in out if name == "iris_recipes" or name.startswith("iris_recipes.")]


def upward_imports(package: Path) -> list[str]:
    problems = []
    for path in sorted(package.rglob("*.py")):
        name = module_name(path, package.parent)
        mine = layer_of(name)
        if mine is None:
            problems.append(f"{path.relative_to(package.parent)}: not in any layer; add it to LAYERS")
            continue
        for line, target in imported(path, package.parent):
            theirs = layer_of(target)
            if theirs is not None and ORDER.index(theirs) < ORDER.index(mine):
                problems.append(
                    f"{path.relative_to(package.parent)}:{line}: {name} ({mine}) imports {target} ({theirs})"
                )
    return problems


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def forbidden_imports(package: Path) -> list[str]:
    """Imports NOT_IMPORTED rules out, with file:line."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        name = module_name(path, package.parent)
        for owner, banned in NOT_IMPORTED.items():
            if not _under(name, owner):
                continue
            for line, target in sorted(set(imported(path, package.parent))):
                if any(_under(target, b) for b in banned):
                    problems.append(f"{path.relative_to(package.parent)}:{line}: {name} imports {target}")
    return problems


def test_imports_only_go_downward():
    assert upward_imports(PACKAGE) == []


def test_stage_work_does_not_import_the_stage_table_or_the_card():
    assert forbidden_imports(PACKAGE) == []


def test_the_space_imports_nothing_from_the_package():
    """The Space is deployed alone (a Hugging Face Space has no iris_recipes), so it must not need it."""
    problems = []
    for path in sorted((REPO / "space").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            problems += [f"{path}:{node.lineno}: {n}" for n in names if n.split(".")[0] == "iris_recipes"]
    assert problems == []


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from iris_recipes.cli import main\n", "iris_recipes/rundir.py:1: iris_recipes.rundir (recipe) imports"),
        ("def f():\n    from iris_recipes import pipeline\n", "iris_recipes/rundir.py:2: iris_recipes.rundir"),
    ],
)
def test_the_check_sees_an_upward_import(tmp_path, source, expected):
    """A copy of the package with one upward import added (also one inside a function) is caught."""
    import shutil

    copy = tmp_path / "iris_recipes"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "rundir.py").write_text(source + (copy / "rundir.py").read_text())
    problems = upward_imports(copy)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


@pytest.mark.parametrize(
    "module, source, expected",
    [
        (
            "evaluate/runner.py",
            "def f():\n    from iris_recipes.stages import run_stage\n",
            "iris_recipes/evaluate/runner.py:2: iris_recipes.evaluate.runner imports iris_recipes.stages",
        ),
        (
            "export/stage.py",
            "from iris_recipes.card import write_card\n",
            "iris_recipes/export/stage.py:1: iris_recipes.export.stage imports iris_recipes.card",
        ),
        (
            "evaluate/report.py",
            "from iris_recipes.card.card import CARD_FILE\n",
            "iris_recipes/evaluate/report.py:1: iris_recipes.evaluate.report imports iris_recipes.card.card",
        ),
    ],
)
def test_the_check_sees_stage_work_importing_the_table_or_the_card(tmp_path, module, source, expected):
    import shutil

    copy = tmp_path / "iris_recipes"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / module).write_text(source + (copy / module).read_text())
    assert forbidden_imports(copy) == [expected]


def test_one_place_builds_a_gguf_file_name():
    """Export writes, push uploads, the manifest downloads and the card names `<recipe>-<quant>.gguf`: all through
    rundir.gguf_filename, so the four cannot drift apart."""
    import re

    built = re.compile(r"\{[^{}]+\}-\{[^{}]+\}\.gguf")
    found = [
        f"{path.relative_to(REPO)}:{n}"
        for root in (PACKAGE, REPO / "space")
        for path in sorted(root.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if built.search(line)
    ]
    assert [where.split(":")[0] for where in found] == ["iris_recipes/rundir.py"], found
