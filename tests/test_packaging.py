"""What `pip install` and the sdist carry: every package imported at run time is declared (and
nothing that is never imported), the version is written once, the sdist runs its own tests."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import etl

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def runtime_imports() -> set[str]:
    """The distributions whose modules etl's own code (and its schemas) imports."""
    found: set[str] = set()
    for path in [*(ROOT / "etl").rglob("*.py"), *(ROOT / "schemas").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    found -= set(sys.stdlib_module_names) | {"etl", "__future__"}
    dists = importlib.metadata.packages_distributions()
    return {_name(dists[m][0]) for m in found}


def test_every_package_imported_at_run_time_is_declared_and_nothing_else():
    declared = {_name(d) for d in PROJECT["dependencies"]}
    imported = runtime_imports()
    assert "numpy" in imported and "urllib3" in imported
    # PostgreSQL journals need the `postgresql` extra (psycopg, and its libpq as psycopg-binary)
    postgresql = {_name(d) for d in PROJECT["optional-dependencies"]["postgresql"]}
    assert "psycopg" in imported & postgresql
    imported -= postgresql
    assert imported - declared == set(), "imported but not declared"
    assert declared - imported == set(), "declared but never imported at run time"


def test_the_version_is_written_once():
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    assert importlib.metadata.version("nexudus-etl") == etl.__version__


def test_the_sdist_carries_what_its_tests_need_and_its_licence(tmp_path):
    done = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir",
                           str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    [sdist] = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4 on (Debian 12 has 3.11.2)
            tar.extractall(tmp_path, filter="data")
        else:
            tar.extractall(tmp_path)  # noqa: S202 - the sdist just built from this repository
    tree = tmp_path / sdist.name.removesuffix(".tar.gz")
    tracked = subprocess.run(["git", "ls-files", "tests", "samples", "bench"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    missing = [p for p in tracked if not (tree / p).exists()]
    assert not missing, missing
    info = (tree / "PKG-INFO").read_text()
    assert f"\nVersion: {etl.__version__}\n" in info
    assert "\nLicense-Expression: " in info and (tree / "LICENSE").exists()
    assert "\nRequires-Dist: numpy>=" in info
    runtime = [line for line in info.splitlines()
               if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not [line for line in runtime if "openpyxl" in line], runtime
    # the suite as shipped runs from there (conftest.py, the samples)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
                          "tests/test_cli.py", "-k", "schema_template_to_stdout"], cwd=tree,
                         capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
