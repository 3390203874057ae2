"""Start-up stays light, and the install has one import namespace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pandas", "pyarrow", "pandera", "numpy")
ROOT = Path(__file__).parent.parent

# Runs `etl ARGS` in a fresh interpreter, then prints which heavy modules it imported.
PROBE = """
import json, sys
from etl.cli import main
try:
    main(sys.argv[1:], prog_name="etl")
except SystemExit:
    pass
print(json.dumps(sorted(m for m in HEAVY if m in sys.modules)))
""".replace("HEAVY", repr(HEAVY))


def imported(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[list[str], str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})
    *shown, last = done.stdout.strip().splitlines()
    return json.loads(last), "\n".join(shown)


@pytest.mark.parametrize("args", [["--help"], ["import", "--help"], ["report", "--help"]])
def test_help_imports_neither_pandas_pyarrow_nor_pandera(tmp_path, args):
    heavy, shown = imported(args, tmp_path)
    assert "Usage: etl" in shown
    assert heavy == []


def test_shell_completion_imports_neither_pandas_pyarrow_nor_pandera(tmp_path):
    env = {"_ETL_COMPLETE": "bash_complete", "COMP_WORDS": "etl import --da", "COMP_CWORD": "2"}
    heavy, shown = imported([], tmp_path, env)
    assert "plain,--daily-limit" in shown
    assert heavy == []
    env = {"_ETL_COMPLETE": "bash_complete", "COMP_WORDS": "etl re", "COMP_CWORD": "1"}
    heavy, shown = imported([], tmp_path, env)
    assert shown.split("\n") == ["plain,reconcile", "plain,report", "plain,resolve"]
    assert heavy == []


def test_a_dry_run_does_import_them(tmp_path):
    """The probe itself can see a heavy import (so the tests above can fail)."""
    heavy, _ = imported(["validate", str(ROOT / "samples" / "credit_uses.csv"), "-q"], tmp_path)
    assert {"pandas", "pyarrow", "pandera"} <= set(heavy)


def test_a_dry_run_leaves_hypothesis_alone_and_importable(tmp_path):
    """pandera's pandas backend would import hypothesis (for its data synthesis) where it is
    installed, a quarter of a second of a dry run's start; the dry run, which calls pandera
    for its invalid rows, does not, and the process can still import it afterwards."""
    pytest.importorskip("hypothesis")  # installed with the test extras
    bad = tmp_path / "bad.csv"
    bad.write_text("CoworkerBookingCreditId,CreditUsed\nabc,1\n", encoding="utf-8")
    probe = (
        "import json, sys\nfrom etl.cli import main\n"
        "try:\n    main(['validate', sys.argv[1], '-q', '--report', 'out/results.csv'],\n"
        "         prog_name='etl')\nexcept SystemExit:\n    pass\n"
        "during = 'hypothesis' in sys.modules\nimport hypothesis.strategies\n"
        "print(json.dumps([during, 'pandera.pandas' in sys.modules, 'hypothesis' in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(bad)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [False, True, True]
    assert "abc" in (tmp_path / "out" / "errors.csv").read_text(encoding="utf-8")


def test_resource_definitions_install_under_etl_not_as_a_top_level_schemas(tmp_path):
    probe = (
        "import importlib.util, importlib.metadata, json, etl.schemas, etl.validate.resources as r\n"
        "dist = importlib.metadata.distribution('nexudus-etl')\n"
        "print(json.dumps([importlib.util.find_spec('schemas') is None, list(etl.schemas.__path__),\n"
        "    etl.__file__,\n"
        "    r.available(), r.load('coworkerbookingcreditusehistories').name,\n"
        "    (dist.read_text('top_level.txt') or '').split()]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    no_top_level, path, package, available, loaded, top_level = json.loads(done.stdout)
    assert no_top_level, "a top-level package `schemas` is importable"
    installed = Path(package).parent  # this checkout's etl (an editable install), or a copy of it
    expected = ROOT / "schemas" if installed == ROOT / "etl" else installed / "schemas"
    assert [Path(p) for p in path] == [expected]
    assert available == ["coworkerbookingcreditusehistories"] == [loaded]
    assert top_level in ([], ["etl"])


def test_every_package_of_etl_is_declared_for_a_non_editable_install():
    """`pip install .` ships only the packages pyproject.toml names: a subpackage left out (the
    emulator once was) works in the editable install and fails in the installed one."""
    import tomllib

    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "etl").rglob("__init__.py")}
    assert found - {"etl.schemas"} <= declared, sorted(found - declared)


def test_the_suite_collects_beside_another_installed_tests_package(tmp_path):
    """Plain pytest, run from another folder, collects the suite even where another
    distribution installed a top-level `tests` package: the suite's own modules import
    `tests.*` (45 files failed to collect before tests/ was a package)."""
    import os
    import subprocess
    import sys

    other = tmp_path / "site" / "tests"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text('"""Some distribution\'s tests, installed by mistake."""\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    done = subprocess.run([sys.executable, "-c", "import sys, pytest; sys.exit(pytest.main())",
                           "--collect-only", "-q", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "test_ahead.py"),
                           str(ROOT / "tests" / "test_kept_verdicts.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "error" not in done.stdout.lower()


def test_plain_pytest_without_the_test_extra_says_what_to_install_in_one_line(tmp_path):
    """etl installed and pytest beside it, without the test extra (no hypothesis): plain pytest
    stops with one line naming what to install, not an ImportError while loading conftest.py
    (what it gave before)."""
    hidden = "import sys, pytest; sys.modules['hypothesis'] = None; sys.exit(pytest.main())"
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # hypothesis' own plugin: not there
    done = subprocess.run([sys.executable, "-c", hidden, "--collect-only", "-q", "-p", "no:cacheprovider",
                           str(ROOT / "tests")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, out[-2000:]
    assert "the test extra is missing from this Python (hypothesis): install it, pip install -e '.[test]'" \
        in out, out[-2000:]
    assert "ImportError" not in out and "Traceback" not in out, out[-2000:]


def test_the_checkout_gives_its_resource_definitions_without_an_editable_install():
    """Beside `pip install .` (not editable), pytest's `pythonpath` and `python -m etl` in the
    checkout import etl from the checkout itself, whose etl/ has no schemas/: `etl.schemas` is
    then the top-level schemas/ folder, as the installed package has it (before: plain pytest
    failed to collect tests/test_storage_rules.py, and `etl schema` ended in a traceback).
    Python without its site-packages (-S): no editable install's finder to lean on."""
    probe = "import json, etl, etl.schemas; print(json.dumps([etl.__file__, list(etl.schemas.__path__)]))"
    done = subprocess.run([sys.executable, "-S", "-c", probe], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    package, path = json.loads(done.stdout)
    assert Path(package) == ROOT / "etl" / "__init__.py"
    assert [Path(p) for p in path] == [ROOT / "schemas"]
