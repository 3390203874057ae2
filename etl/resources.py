"""What the pipeline knows of a target: its endpoint and its columns, and nothing by name.

A resource definition lives in `schemas/<name>.py` (installed as `etl.schemas.<name>`) as
`RESOURCE = Resource(...)`; adding a Nexudus resource is one such file, with no change to
reading, validating, posting or reporting.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from etl.errors import UsageProblem
from etl.fields import Field

if TYPE_CHECKING:
    import pandera.pandas as pa


def header_key(name: str) -> str:
    """How headers are compared: ignoring case, spaces, `_` and `-`."""
    return re.sub(r"[\s_\-]+", "", name).casefold()


@dataclass(frozen=True)
class Reference:
    """A column whose value names a record of the account that a row needs, checked before
    posting (see `etl.checks`): the record must exist; with `draws`, the row's amount in that
    field is drawn from what the record has left (its field `remaining`); with `expires`, a
    record whose date in that field has passed is noted on the row (historic uses are normal)."""

    column: str  # the row's field holding the record's Id
    endpoint: str  # where one record is read: "/api/.../{id}"
    name: str = "record"  # what it is called in messages ("credit 5000 does not exist ...")
    draws: str = ""  # the row's field whose amount is drawn down
    remaining: str = ""  # the record's field: what is left
    expires: str = ""  # the record's field: when it expires (null: never)


@dataclass(frozen=True)
class Resource:
    name: str
    endpoint: str
    fields: tuple[Field, ...]
    description: str = ""
    #: list-endpoint filter that finds existing records of a row (the field whose value it takes)
    lookup: dict[str, str] = field(default_factory=dict)
    #: list-endpoint filter on the user-defined SystemId (where the account keeps it)
    system_id_filter: str = ""
    #: records of the account the rows refer to, checked before the first POST (`etl.checks`)
    references: tuple[Reference, ...] = ()

    @property
    def required(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def match(self, header: str) -> str | None:
        """The field a file's header names (by its name or an alias), or None."""
        key = header_key(header)
        for f in self.fields:
            if key == header_key(f.name) or key in {header_key(a) for a in f.aliases}:
                return f.name
        return None

    def schema(self, decimal: str = ".") -> pa.DataFrameSchema:
        """The pandera schema of the raw text cells of this resource's columns (pandera is
        imported here, not with the module: `etl --help` and a clean dry run's start stay light)."""
        from etl.lazy import pandera

        pa = pandera()
        return pa.DataFrameSchema(
            {
                f.name: pa.Column(
                    checks=[f.check(decimal)], nullable=True, required=False, coerce=False
                )
                for f in self.fields
            },
            strict=False,
            name=self.name,
        )


def available() -> list[str]:
    schemas = importlib.import_module("etl.schemas")  # installed from schemas/: mypy can't see it
    return sorted(m.name for m in pkgutil.iter_modules(schemas.__path__) if not m.ispkg)


def load(name: str) -> Resource:
    """The resource definition called NAME, or a usage error listing the ones there are."""
    if name not in available():
        raise UsageProblem(
            f"unknown resource {name!r}; available: {', '.join(available()) or 'none'}"
        )
    module = importlib.import_module(f"etl.schemas.{name}")
    resource: Resource = module.RESOURCE
    return resource
