"""The stages' nevers, held against the code by reading every import (those made inside functions
too, which is where this codebase defers its heavy ones): data flows one way, reading and
validating never touch HTTP or the journal, reporting never posts, only the CLI speaks click, only
the posting module speaks HTTP, only the CLI reaches the emulator."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ETL = Path(__file__).parent.parent / "etl"

#: reading a file and checking its rows: nothing here may post, journal or start a server
READ_AND_VALIDATE = {"reading", "encodings", "codepages", "sheetcells", "fields", "values", "validating",
                     "kernels", "rules", "dtypes", "resources", "lazy"}
#: what shows outcomes: never posts
REPORT = {"report", "report_html", "reporting", "status", "texts"}
#: the modules that may post or keep the journal
POSTING_AND_LEDGER = {"posting", "pacing", "checks", "journal", "ledger", "reconciling", "fencing",
                      "storage", "identity", "importing", "connecting", "resolving", "runs"}
#: what builds clients, pacers and journals, or decides a row: the library's work, never the CLI's
PLUMBING = {"posting", "pacing", "checks", "journal", "journal_backends", "ledger", "reconciling",
            "fencing", "storage", "identity"}


def modules() -> dict[str, set[str]]:
    """Each module of etl (`sandbox.server` for the emulator's) and every module it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted(ETL.rglob("*.py")):
        name = ".".join(path.relative_to(ETL).with_suffix("").parts)
        imports: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imports.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imports.add(node.module)
                if node.module == "etl":  # `from etl import logs`
                    imports.update(f"etl.{alias.name}" for alias in node.names)
        found[name] = imports
    return found


def importers(of: str) -> set[str]:
    """The etl modules that import OF or anything below it."""
    return {name for name, imports in modules().items()
            if any(i == of or i.startswith(of + ".") for i in imports)}


def test_the_layout_is_read_whole():
    found = modules()
    assert {"cli", "posting", "reading", "journal", "sandbox.server"} <= set(found)
    assert "click" in found["cli"] and "requests" in found["posting"]  # the reader sees imports


@pytest.mark.parametrize("library, allowed", [
    ("click", {"cli"}),
    ("requests", {"posting"}),
    ("urllib3", {"posting"}),
])
def test_only_one_module_speaks_each_outside_protocol(library, allowed):
    assert importers(library) <= allowed


def test_only_the_cli_reaches_the_emulator():
    assert {m for m in importers("etl.sandbox") if not m.startswith("sandbox")} <= {"cli"}


@pytest.mark.parametrize("stage, never", [
    (READ_AND_VALIDATE, POSTING_AND_LEDGER | {"cli", "pipeline"}),
    (REPORT, {"posting", "pacing", "checks", "reconciling", "importing", "connecting", "resolving", "runs",
              "cli"}),
])
def test_no_stage_imports_one_after_it(stage, never):
    found = modules()
    wrong = {(name, i) for name in stage & set(found) for i in found[name]
             if i.startswith("etl.") and i.removeprefix("etl.").split(".")[0] in never}
    assert not wrong
    assert not (importers("requests") & stage)


def test_the_cli_is_a_face():
    """The CLI parses options into settings and calls one library function per command
    (etl.runs, etl.resolving, etl.status, ...): it imports none of the modules that make clients,
    pacers and journals or decide rows, so it cannot hold a second copy of their work (as
    `etl reconcile` once held a copy of the import's recovery)."""
    found = modules()["cli"]
    assert {i for i in found if i.removeprefix("etl.").split(".")[0] in PLUMBING} == set()
    assert {"etl.runs", "etl.resolving", "etl.status"} <= found  # the reader sees the deferred ones
