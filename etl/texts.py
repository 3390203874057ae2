"""Small helpers for text the modules share: repeated header names told apart, and the plain
text tables of `etl report` and `etl status` (columns padded to their widest cell)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Mapping, Sequence


def numbered(names: Sequence[str]) -> list[tuple[str, int]]:
    """Each name with how many namesakes precede it: two "Notes" columns are two columns."""
    seen: Counter[str] = Counter()
    out = []
    for name in names:
        out.append((name, seen[name]))
        seen[name] += 1
    return out


def aligned(rows: Sequence[Sequence[str]], *, right: Container[int] = (),
            least: Mapping[int, int] | None = None, indent: str = "") -> list[str]:
    """ROWS as lines of columns two spaces apart, each as wide as its widest cell (or LEAST);
    the columns in RIGHT are right-aligned (numbers), and a last column aligned left is not
    padded (a free text)."""
    if not rows:
        return []
    count = len(rows[0])
    widths = [max(max(len(r[i]) for r in rows), (least or {}).get(i, 0)) for i in range(count)]
    lines = []
    for r in rows:
        cells = [c.rjust(w) if i in right else c if i == count - 1 else c.ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append(indent + "  ".join(cells))
    return lines
