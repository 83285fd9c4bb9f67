"""The layering of docs/architecture.md holds, and its checks would see a new violation.

- The import-linter contracts in pyproject.toml ([tool.importlinter]) are kept by the tree, and each breaks on a
  violation planted in a copy of it: the core importing a service (also lazily, inside a function) or the
  orchestration, a service or the UI reaching into another service's insides, a client importing its own
  service's insides.
- No import circle between files (grimp's graph of every module; lazy imports count).
- No module imports another module's underscore name.
- README's layout and docs/architecture.md name every package of the layers.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES: tuple[str, ...] = tuple(
    tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"])
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    args = [str(LINT_IMPORTS), "--no-cache", "--no-logo", *(a for c in contracts for a in ("--contract", c))]
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_packages_are_the_tree_and_the_installed_ones() -> None:
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert set(PACKAGES) == on_disk, "a top-level package is missing from [tool.importlinter] root_packages"
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {i.rstrip("*") for i in include} == set(PACKAGES)


def test_the_docs_name_every_package_of_the_layers() -> None:
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):].split("```")[1]
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    for package in PACKAGES:
        assert f"\n{package}/" in layout, f"README's layout does not list {package}/"
        assert f"`{package}`" in architecture, f"docs/architecture.md's layer table does not name {package}"
    assert "docs/architecture.md" in readme[readme.index("## Layout"):]


def test_the_contracts_are_kept() -> None:
    run = _lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packages' Python files and pyproject.toml, copied: plants go into copies of this."""
    root = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package,
                        ignore=lambda d, names: [n for n in names if not n.endswith(".py") and not (Path(d) / n).is_dir()
                                                 or n == "__pycache__"])
    shutil.copy(ROOT / "pyproject.toml", root)
    return root


PLANTS = {
    # id: (contract, file, code appended, the import the report must name)
    "core-imports-a-service": ("layers", "cmr/rpc/planted.py", "import search_svc.store\n",
                               "cmr.rpc.planted -> search_svc.store"),
    "core-imports-a-service-lazily": ("layers", "cmr/dicom/planted.py", "def f():\n    from ingest_svc import worker\n",
                                      "cmr.dicom.planted -> ingest_svc.worker"),
    "core-imports-the-orchestration": ("layers", "cmr/planted.py", "from orchestration.stack import parts\n",
                                       "cmr.planted -> orchestration.stack.parts"),
    "service-imports-the-ui": ("layers", "ingest_svc/planted.py", "import ui.cine\n", "ingest_svc.planted -> ui.cine"),
    "ui-imports-the-bench": ("layers", "ui/planted.py", "import bench.load_stats\n", "ui.planted -> bench.load_stats"),
    "service-into-another-service": ("clients", "generator_svc/planted.py",
                                     "from search_svc.store.schema import ExamFilter\n",
                                     "generator_svc.planted -> search_svc.store.schema"),
    "ui-into-a-service": ("clients", "ui/planted.py", "from encoder_svc.service import EncoderServicer\n",
                          "ui.planted -> encoder_svc.service"),
    "client-into-its-service": ("thin-clients", "search_svc/client.py", "\nfrom search_svc import index\n",
                                "search_svc.client -> search_svc.index"),
}


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_a_planted_violation_breaks_its_contract(plant: str, pristine: Path, tmp_path: Path) -> None:
    contract, file, code, named = PLANTS[plant]
    tree = tmp_path / "tree"
    shutil.copytree(pristine, tree)
    with (tree / file).open("a") as fh:
        fh.write(code)
    run = _lint_imports(tree, contract)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "BROKEN" in run.stdout and named in run.stdout, run.stdout


# --- import circles -------------------------------------------------------------------------------------------


def import_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative): each is an import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}, "g": {"g"}}
    assert sorted(import_cycles(graph)) == [["a", "b", "c"], ["e", "f"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_circle_between_files() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    circles = import_cycles(edges)
    where = [f"{a} -> {b} (l. {d['line_number']})" for circle in circles for a in circle for b in edges[a]
             if b in circle for d in graph.get_import_details(importer=a, imported=b)]
    assert not circles, "import circles:\n" + "\n".join(where)


# --- underscore names -------------------------------------------------------------------------------------------


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(source: str, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """Where `source` takes another module's underscore name: `from x import _y`, or `m._y` on an imported
    module or name `m` of the project (stdlib and third-party names are not this check's business)."""
    tree = ast.parse(source)
    ours: dict[str, str] = {}  # local name -> what it was imported as
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in packages:
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"l. {node.lineno}: from {node.module} import {alias.name}")
                else:
                    ours[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in packages:
                    ours[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name) \
                and node.value.id in ours:
            found.append(f"l. {node.lineno}: {node.value.id}.{node.attr} ({ours[node.value.id]})")
    return found


def test_the_private_name_check_sees_both_forms() -> None:
    source = "from cmr.train.trainer import _split, train\nimport cmr.eval.run as run\nrun._prompt_keys()\n" \
             "import os\nos._exit\nfrom typing import TYPE_CHECKING\n"
    assert private_imports(source) == ["l. 1: from cmr.train.trainer import _split",
                                       "l. 3: run._prompt_keys (cmr.eval.run)"]


def test_no_module_imports_another_modules_underscore_name() -> None:
    found = [f"{path.relative_to(ROOT)} {hit}" for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
             for hit in private_imports(path.read_text())]
    assert not found, "make the name public where it is shared, or stop sharing it:\n" + "\n".join(found)
