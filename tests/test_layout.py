"""The stages' nevers, held against the code by reading every import (those made inside functions
too, which is where this codebase defers its heavy ones): data flows one way, reading and
validating never touch HTTP or the journal, reporting never posts, only the CLI speaks click, only
the posting module speaks HTTP, only the CLI reaches the emulator, and no two stage folders
import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ETL = Path(__file__).parent.parent / "etl"

#: the stage folders, in the order data flows through them; each may import only those before it
#: (and the shared modules at the top of etl), never one after it: the CLI drives the run, the run
#: drives the rest. `report` comes after `post` in this list but never imports it.
STAGES = ["read", "validate", "ledger", "post", "report", "run", "cli"]
#: what each stage may import besides the shared modules: the stages it takes its input from
MAY_IMPORT = {
    "read": set(),
    "validate": {"read"},
    "ledger": {"validate"},
    "post": {"ledger", "validate"},
    "report": {"ledger", "validate"},
    "run": {"read", "validate", "ledger", "post", "report"},
    "cli": {"run", "report", "validate", "sandbox"},
}
#: the modules at the top of etl, shared by every stage (a schema file names `dtypes` and `fields`)
#: (`resources` only names, for schema files of earlier releases, what etl.validate.resources has;
#: `heap` is the process's C heap, kept by the CLI at start and by the run between chunks)
SHARED = {"__init__", "__main__", "errors", "outcomes", "logs", "config", "texts", "fields", "dtypes",
          "resources", "heap"}

#: reading a file and checking its rows: nothing here may post, journal or start a server
READ_AND_VALIDATE = {"read", "validate"}
#: what shows outcomes: never posts
REPORT = {"report"}
#: the folders that may post or keep the journal
POSTING_AND_LEDGER = {"post", "ledger", "run"}
#: what builds clients, pacers and journals, or decides a row: the library's work, never the CLI's
PLUMBING = {"post", "ledger", "run.checks"}


def modules() -> dict[str, set[str]]:
    """Each module of etl (`read.reading`, `sandbox.server`; a package by its own name, `cli`) and
    every module it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted(ETL.rglob("*.py")):
        parts = path.relative_to(ETL).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        name = ".".join(parts)
        imports: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imports.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imports.add(node.module)
                if node.module.split(".")[0] == "etl":  # `from etl import logs`, `from etl.run import runs`
                    imports.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[name] = imports
    return found


def folder(name: str) -> str:
    """The stage folder of module NAME (`read.reading` -> `read`), or the shared module's name."""
    return name.split(".")[0]


def etl_imports(imports: set[str]) -> set[str]:
    """The etl modules among IMPORTS, without the leading `etl.` (and without etl's version)."""
    return {i.removeprefix("etl.") for i in imports if i.startswith("etl.") and i != "etl.__version__"}


def importers(of: str) -> set[str]:
    """The etl modules that import OF or anything below it."""
    return {name for name, imports in modules().items()
            if any(i == of or i.startswith(of + ".") for i in imports)}


def within(names: set[str], prefixes: set[str]) -> set[str]:
    """NAMES that are one of PREFIXES or a module below one of them."""
    return {n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes)}


def test_the_layout_is_read_whole():
    found = modules()
    assert {"cli", "post.posting", "read.reading", "ledger.journal", "sandbox.server"} <= set(found)
    assert "click" in found["cli.common"] and "requests" in found["post.posting"]  # the reader sees imports
    assert {folder(n) for n in found} == set(STAGES) | SHARED | {"sandbox"}  # no module is left out


@pytest.mark.parametrize("library, allowed", [
    ("requests", {"post.posting"}),
    ("urllib3", {"post.posting"}),
])
def test_only_one_module_speaks_each_outside_protocol(library, allowed):
    assert importers(library) <= allowed


def test_nothing_but_the_cli_speaks_click():
    assert {folder(m) for m in importers("click")} == {"cli"}


def test_only_the_cli_reaches_the_emulator():
    assert {folder(m) for m in importers("etl.sandbox") if folder(m) != "sandbox"} <= {"cli"}


def test_no_two_stage_folders_import_each_other():
    """Each stage folder imports only the stages it takes its input from (MAY_IMPORT) and the
    shared modules; none of those imports it back."""
    found = modules()
    arrows = {(folder(name), folder(i)) for name, imports in found.items() if folder(name) in STAGES
              for i in etl_imports(imports) if folder(i) != folder(name) and folder(i) not in SHARED}
    assert {(a, b) for a, b in arrows if b not in MAY_IMPORT[a]} == set()
    assert {(a, b) for a, b in arrows if (b, a) in arrows} == set()


def test_the_shared_modules_import_no_stage():
    """The top of etl is what every stage shares: it imports none of them, but that `python -m etl`
    is the CLI, `config` asks the journal's backends whether a URL carries a password,
    `outcomes` names the journal's entry in its type hints, and `resources` names for a schema
    file of an earlier release what the validate stage has."""
    found = modules()
    wrong = {(name, folder(i)) for name in SHARED & set(found) for i in etl_imports(found[name])
             if folder(i) not in SHARED}
    assert wrong <= {("__main__", "cli"), ("config", "ledger"), ("outcomes", "ledger"),
                     ("resources", "validate")}


@pytest.mark.parametrize("stage, never", [
    (READ_AND_VALIDATE, POSTING_AND_LEDGER | {"cli", "report"}),
    (REPORT, {"post", "run", "cli"}),
])
def test_no_stage_imports_one_after_it(stage, never):
    found = modules()
    wrong = {(name, i) for name in found if folder(name) in stage for i in etl_imports(found[name])
             if folder(i) in never}
    assert not wrong
    assert not {folder(m) for m in importers("requests")} & stage


def test_the_cli_is_a_face():
    """The CLI parses options into settings and calls one library function per command
    (etl.run.runs, etl.run.resolving, etl.report.status, ...): it imports none of the modules
    that make clients, pacers and journals or decide rows, so it cannot hold a second copy of
    their work (as `etl reconcile` once held a copy of the import's recovery)."""
    found = modules()
    faces = {name: imports for name, imports in found.items() if folder(name) == "cli"}
    used = set().union(*faces.values())
    assert within(etl_imports(used), PLUMBING) == set()
    assert {"etl.run.runs", "etl.run.resolving", "etl.report.status"} <= used  # the deferred ones too


def test_no_file_holds_the_markers_a_merge_left_unresolved():
    """A merge's conflict markers committed by mistake (a README once held both sides)."""
    import os
    import re

    root = Path(__file__).resolve().parent.parent
    markers = re.compile(r"^(<{7} |>{7} |={7}$)", re.MULTILINE)
    left = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and "venv" not in d
                         and d not in ("logs", "out", "__pycache__")]
        for name in files:
            path = Path(folder) / name
            if path.suffix in (".py", ".md", ".toml", ".txt") \
                    and markers.search(path.read_text(errors="replace")):
                left.append(str(path.relative_to(root)))
    assert left == []
