"""Print a pip constraints file that pins each runtime dependency, and those of the `postgresql`
extra, to the floor pyproject.toml declares (`pandas>=2.2` -> `pandas==2.2`), so CI can prove
the floors are true:

    python .ci/floors.py > floors.txt && pip install -c floors.txt -e '.[test]'
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: the extras whose floors are pinned with the runtime's (the others are tools of the tests)
PINNED_EXTRAS = ("postgresql",)


def floors(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """`name==floor` for every runtime dependency declared with a `>=` floor."""
    project = tomllib.loads(pyproject.read_text())["project"]
    deps = list(project["dependencies"])
    for extra in PINNED_EXTRAS:
        deps += project.get("optional-dependencies", {}).get(extra, [])
    pins = []
    for dep in deps:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(?:,.*)?", dep)
        if match is None:
            sys.exit(f"no >= floor in dependency {dep!r}: declare one")
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


if __name__ == "__main__":
    print("\n".join(floors()))
