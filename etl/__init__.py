"""Import credit-use exports into Nexudus Spaces: validate every row, post the valid ones, report each."""

import importlib.util as _util
import os as _os
import sys as _sys

__version__ = "0.1.0"


def _checkout_schemas() -> None:
    """`etl.schemas` read from a source checkout: installed, the resource definitions are
    etl/schemas (pyproject.toml maps the top-level schemas/ folder there); imported from the
    checkout itself (pytest's `pythonpath`, `python -m etl` in it, beside a `pip install .` that
    is not editable), they are that schemas/ folder, as the installed package would have them."""
    here = _os.path.dirname(_os.path.abspath(__file__))
    folder = _os.path.join(_os.path.dirname(here), "schemas")
    init = _os.path.join(folder, "__init__.py")
    if "etl.schemas" in _sys.modules or _os.path.isdir(_os.path.join(here, "schemas")) \
            or not _os.path.isfile(init):
        return
    spec = _util.spec_from_file_location("etl.schemas", init, submodule_search_locations=[folder])
    if spec is None or spec.loader is None:
        return
    module = _util.module_from_spec(spec)
    _sys.modules["etl.schemas"] = module
    spec.loader.exec_module(module)
    globals()["schemas"] = module  # as the import system binds a subpackage to its parent


_checkout_schemas()
