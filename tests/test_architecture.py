"""The shape of the house, checked: stage packages whose imports point one way, no cycles
(lazy imports count), small modules, a ``sandbox/`` that imports nothing from ``grader/``,
a docstring on every package, and one catalogue that knows every flag the code raises."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500
MAX_TOP_LEVEL_MODULES = 10

# The flow, first to last: a module may import its own stage and the stages before it only.
# Base modules (errors, config, schemas, files, images) come before every stage; the sandbox
# providers (isolation) are infrastructure that the runs use.
STAGES = ("base", "taskset", "isolation", "runs", "evidence", "scores", "record", "reports", "executors",
          "pipeline", "commands", "cli")
BASE_MODULES = {"grader", "grader.errors", "grader.config", "grader.schemas", "grader.files", "grader.images"}
# Not part of the flow: builds tiny pipelines for the example and the tests; imports no stage.
TOOLS = {"grader.tinymodels"}


def _modules() -> dict[str, Path]:
    found = {}
    for top in ("grader", "sandbox"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every project module ``name`` imports, anywhere in the file (function bodies too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _stage(module: str) -> str | None:
    if module in BASE_MODULES:
        return "base"
    if module == "grader.cli":
        return "cli"
    parts = module.split(".")
    if parts[0] == "grader" and len(parts) > 1 and parts[1] in STAGES:
        return parts[1]
    return None


def test_every_grader_module_belongs_to_a_stage_or_is_a_named_tool():
    loose = [m for m in MODULES if m.startswith("grader") and _stage(m) is None and m not in TOOLS]
    assert not loose, f"modules outside the stage packages and the base: {loose}"


def test_imports_point_one_way_along_the_flow():
    backward = []
    for module, targets in GRAPH.items():
        if not module.startswith("grader") or module in TOOLS:
            continue
        mine = STAGES.index(_stage(module))
        for target in targets:
            if target.startswith("grader") and (target in TOOLS or STAGES.index(_stage(target)) > mine):
                backward.append(f"{module} ({_stage(module)}) imports {target} ({_stage(target) or 'tool'})")
    assert not backward, "imports against the flow:\n" + "\n".join(sorted(backward))


def test_no_import_cycle_lazy_imports_included():
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(GRAPH.get(node, ())):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_sandbox_package_imports_nothing_of_the_grader():
    leaks = {m: sorted(t for t in targets if t.startswith("grader")) for m, targets in GRAPH.items()
             if m.startswith("sandbox")}
    assert not any(leaks.values()), leaks


def test_no_module_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in MODULES.values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_few_plain_modules_at_the_top_of_grader():
    plain = sorted(p.name for p in (ROOT / "grader").glob("*.py") if p.name != "__init__.py")
    assert len(plain) <= MAX_TOP_LEVEL_MODULES, plain


@pytest.mark.parametrize("package", sorted(p.parent.relative_to(ROOT).as_posix()
                                           for p in (ROOT / "grader").rglob("__init__.py")))
def test_every_package_says_what_it_takes_and_gives(package):
    doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text()))
    assert doc and doc.strip(), f"{package}/__init__.py has no docstring"
    assert len(doc.split("\n\n")[0].splitlines()) <= 4, f"{package}: keep the summary to a few lines"


# --------------------------------------------------------------------------- flags


def _raised_flags() -> dict[str, str]:
    """Flag names the code raises: ``flags=(...)``, ``.flag("x")``, ``fail(..., "x")``,
    ``add_flags([...])``, ``flags.append/add/extend``, ``found["x"] = ...``."""
    found: dict[str, str] = {}

    def strings(node) -> list[str]:
        return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]

    for name, path in MODULES.items():
        if not name.startswith("grader") or name == "grader.evidence.flags":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Call):
                func = node.func
                attr = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                owner = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
                if attr == "flag" and node.args:
                    names += strings(node.args[0])
                elif attr == "fail":
                    names += [s for a in node.args[2:] for s in strings(a)]
                elif attr == "add_flags" and node.args:
                    names += strings(node.args[0])
                elif attr in ("append", "add", "extend") and owner.endswith("flags") and node.args:
                    names += strings(node.args[0])
                for kw in node.keywords:
                    if kw.arg == "flags":
                        names += strings(kw.value)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "found":
                        names += strings(target.slice)
            for flag in names:
                found.setdefault(flag, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_flag_the_code_raises_is_in_the_catalogue():
    from grader.evidence.flags import FLAGS

    raised = _raised_flags()
    assert len(raised) >= 25, sorted(raised)              # the scan itself still finds the flags
    unknown = {flag: where for flag, where in raised.items() if flag not in FLAGS}
    assert not unknown, f"flags raised but not in grader/evidence/flags.py: {unknown}"


def test_static_flags_in_the_catalogue_are_the_ones_the_static_pass_raises():
    from grader.evidence.flags import FLAGS

    source = (ROOT / "grader" / "evidence" / "static_check.py").read_text()
    raised = {n.value for n in ast.walk(ast.parse(source))
              if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("static_")
              and n.value.replace("_", "").isalnum()}
    assert raised == {f for f in FLAGS if f.startswith("static_")}
