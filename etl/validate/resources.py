"""What the pipeline knows of a target, read off its pandera schema, and nothing by name.

A resource is one file, `schemas/<name>.py` (installed as `etl.schemas.<name>`), exposing
`SCHEMA`, a `pandera.pandas.DataFrameSchema` (a `DataFrameModel` class is taken too, through
its `.to_schema()`). Its columns say which must be in a file (`required=`), which may be blank
(`nullable=`), what kind of value a cell holds (the dtype: `"Int64"`, `etl.dtypes.Amount`,
`str`) and the checks every row must pass. What etl needs beyond validation rides on pandera's
own fields: a column's `description` is its help and `metadata={"aliases": [...]}` the other
names a header may give it; the schema's `description` says what a row is, and its `metadata`
holds the `endpoint` rows are posted to, the list filters that find a row's records (`lookup`,
`system_id_filter`) and the account records a row refers to (`references`).

`--resource` takes a resource's name or the path of such a file (`--resource ./mine.py`), so a
schema can be tried, or tightened, without touching the installed one.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import math
import os
import pkgutil
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

from etl.errors import UsageProblem
from etl.validate.values import Kind


def header_key(name: str) -> str:
    """How headers are compared: ignoring case, spaces, `_` and `-`."""
    return re.sub(r"[\s_\-]+", "", name).casefold()


def reasons_at(header: Sequence[str]) -> int | None:
    """Where an errors.csv etl wrote keeps its reasons: its column headed `errors` (the last one,
    as etl writes it, but wherever a spreadsheet saved it: moved, respelt `Errors`, another
    column added after it); None for a file without one. Such a file is read back as etl wrote
    it (its formula guards taken off): a row of it is the same row, never a second credit use,
    which outweighs reading an export's own notes column of that name so."""
    found = [at for at, name in enumerate(header) if header_key(name) == "errors"]
    return found[-1] if found else None


def reasons_moved(header: Sequence[str]) -> bool:
    """An errors.csv whose reasons column is not where etl writes it (the last column with a
    name): a spreadsheet changed it, or it is an export of the operator's own."""
    at = reasons_at(header)
    named = [i for i, name in enumerate(header) if name.strip()]
    return at is not None and (not named or named[-1] != at or header[at].strip() != "errors")


@dataclass(frozen=True)
class Reference:
    """A column whose value names a record of the account that a row needs, checked before
    posting (see `etl.run.checks`): the record must exist; with `draws`, the row's amount in that
    field is drawn from what the record has left (its field `remaining`); with `expires`, a
    record whose date in that field has passed is noted on the row (historic uses are normal)."""

    column: str  # the row's field holding the record's Id
    endpoint: str  # where one record is read: "/api/.../{id}"
    name: str = "record"  # what it is called in messages ("credit 5000 does not exist ...")
    draws: str = ""  # the row's field whose amount is drawn down
    remaining: str = ""  # the record's field: what is left
    expires: str = ""  # the record's field: when it expires (null: never)


@dataclass(frozen=True)
class Field:
    """One column of the schema as etl reads it (all of it taken from the pandera column)."""

    name: str
    kind: Kind
    required: bool  # the file must have the column (pandera's `required`)
    nullable: bool  # a cell may be blank (pandera's `nullable`)
    aliases: tuple[str, ...] = ()
    help: str = ""
    rules: tuple[str, ...] = ()  # its checks, in plain words

    @property
    def type_name(self) -> str:
        return self.kind.value


@dataclass(frozen=True)
class Resource:
    name: str
    endpoint: str
    fields: tuple[Field, ...]
    schema: Any  # the pandera.pandas.DataFrameSchema: what every row is checked against
    description: str = ""
    #: list-endpoint filter that finds existing records of a row (the field whose value it takes)
    lookup: dict[str, str] = field(default_factory=dict)
    #: list-endpoint filter on the user-defined SystemId (where the account keeps it)
    system_id_filter: str = ""
    #: records of the account the rows refer to, checked before the first POST (`etl.run.checks`)
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


def kind_of(name: str, column: Any) -> Kind:
    """The kind of value a column's cells hold, from its pandera dtype."""
    from etl.dtypes import Amount

    dtype = column.dtype
    if dtype is None:
        return Kind.TEXT
    if isinstance(dtype, Amount):
        return Kind.AMOUNT
    if str(dtype) == "Int64":
        return Kind.INTEGER
    from pandera import dtypes

    if dtypes.is_string(dtype) or str(dtype) == "object":
        return Kind.TEXT
    hint = ' (declare "Int64": pandas\' nullable integers, so a blank cell is null)' \
        if dtypes.is_int(dtype) else ""
    raise SchemaProblem(f"column {name}: etl reads cells as \"Int64\", etl.dtypes.Amount or str, "
                        f"not {dtype}{hint}")


class SchemaProblem(UsageProblem):
    """A schema etl cannot honour as written (the message names the column and why)."""


def _model_of(module: Any, schema: Any) -> Any:
    """SCHEMA with the metadata of the DataFrameModel of MODULE it was made of, where it has
    none (`Model.to_schema()` leaves the model's Config.metadata behind): the models there whose
    columns and name are SCHEMA's, all with the same metadata. SCHEMA's own columns and checks
    stay as they are (a schema made of a model, then changed, keeps its changes)."""
    import pandera.pandas as pa

    if not isinstance(schema, pa.DataFrameSchema) or schema.metadata:
        return schema
    found = []
    for model in vars(module).values():
        if not (isinstance(model, type) and issubclass(model, pa.DataFrameModel)
                and model is not pa.DataFrameModel and getattr(model.Config, "metadata", None)):
            continue
        try:
            made = model.to_schema()
        except Exception:  # noqa: BLE001 - not the model of SCHEMA
            continue
        if list(made.columns) == list(schema.columns) and made.name == schema.name:
            found.append(dict(model.Config.metadata or {}))
    if not found or any(meta != found[0] for meta in found):
        return schema
    return _with_metadata(schema, found[0])


def _with_metadata(schema: Any, metadata: dict[str, Any]) -> Any:
    """A copy of SCHEMA saying METADATA, as a schema would say it itself."""
    schema = copy.copy(schema)
    schema.metadata = dict(metadata)
    return schema


def from_schema(schema: Any, name: str) -> Resource:
    """The resource SCHEMA declares (NAME when the schema has none)."""
    import pandera.pandas as pa

    from etl.validate.rules import rule

    model_meta = None
    if isinstance(schema, type) and issubclass(schema, pa.DataFrameModel):
        model_meta = getattr(schema.Config, "metadata", None)  # to_schema() leaves it behind
        schema = schema.to_schema()
        if model_meta and not schema.metadata:
            schema = _with_metadata(schema, model_meta)
    if not isinstance(schema, pa.DataFrameSchema):
        raise SchemaProblem(f"SCHEMA is a {type(schema).__name__}, not a pandera.pandas.DataFrameSchema")
    meta = dict(schema.metadata or model_meta or {})
    if not meta.get("endpoint"):
        raise SchemaProblem('SCHEMA has no metadata={"endpoint": "/api/..."}: where its rows are posted')
    _refuse_what_is_not_honoured(schema)
    schema = _bounds_as_written(schema)
    fields = []
    for col_name, column in schema.columns.items():
        if column.regex:
            raise SchemaProblem(f"column {col_name}: etl needs each column by its name (regex=True)")
        _refuse_in_column(str(col_name), column)
        cmeta = dict(column.metadata or {})
        fields.append(Field(
            name=str(col_name), kind=kind_of(str(col_name), column), required=bool(column.required),
            nullable=bool(column.nullable), aliases=tuple(cmeta.get("aliases", ())),
            help=column.description or column.title or "",
            rules=tuple(rule(c) for c in column.checks),
        ))
    return Resource(
        name=schema.name or name, endpoint=meta["endpoint"], fields=tuple(fields), schema=schema,
        description=schema.description or schema.title or "",
        lookup=dict(meta.get("lookup", {})), system_id_filter=meta.get("system_id_filter", ""),
        references=tuple(meta.get("references", ())),
    )


def _as_written(value: Any) -> Any:
    """A float bound of an amount as its author wrote it (0.3, not the double nearest to it,
    which is 0.299999999999999988897769753748...): the exact decimal of its shortest spelling.
    Sets and lists of bounds, each so."""
    from decimal import Decimal

    if isinstance(value, float) and math.isfinite(value):  # np.float64 too: its own repr is not one
        return Decimal(float.__repr__(value))
    if isinstance(value, list | tuple | set | frozenset) and any(isinstance(v, float) for v in value):
        return type(value)(_as_written(v) for v in value)
    return value


def _bounds_as_written(schema: Any) -> Any:
    """SCHEMA with the float bounds of pandera's built-in checks of amount columns (`gt(0.3)`,
    `isin([0.1, 0.2])`) as written: an amount is an exact decimal, and `le(0.3)` refusing "0.3"
    (larger than the double 0.3 is) would hold no one's rule."""
    from etl.validate.rules import _builtin

    for name, column in schema.columns.items():
        if kind_of(str(name), column) is not Kind.AMOUNT:
            continue
        checks = []
        for check in column.checks:
            stats = dict(check.statistics or {})
            if _builtin(check) and any(_as_written(v) is not v for v in stats.values()):
                check = copy.copy(check)
                check.statistics = {k: _as_written(v) for k, v in stats.items()}
                check._check_kwargs = {k: _as_written(v) for k, v in (check._check_kwargs or {}).items()}
            checks.append(check)
        if any(a is not b for a, b in zip(checks, column.checks, strict=True)):
            schema = schema.update_column(name, checks=checks)
    return schema


def _refuse_what_is_not_honoured(schema: Any) -> None:
    """What a schema may say that etl would not honour, refused in so many words (etl posts
    each row's cells as read, checks them a chunk of rows at a time, and reads columns by name
    in any order)."""
    if getattr(schema, "parsers", None):
        raise SchemaProblem("SCHEMA's parsers= can't be honoured: etl checks and posts each cell's "
                            "value as read; write the rule as a check")
    if getattr(schema, "add_missing_columns", False):
        raise SchemaProblem("SCHEMA's add_missing_columns=True can't be honoured: etl posts only "
                            "the cells a file has (a column the file lacks is left out)")
    if getattr(schema, "ordered", False):
        raise SchemaProblem("SCHEMA's ordered=True can't be honoured: etl reads a file's columns "
                            "by their names, in any order")
    if getattr(schema, "index", None) is not None:
        raise SchemaProblem("SCHEMA's index= can't be honoured: etl's rows have no index of the "
                            "file's (a row is known by its row number)")
    if getattr(schema, "unique_column_names", False):
        raise SchemaProblem("SCHEMA's unique_column_names=True can't be honoured: etl reads each "
                            "column of the schema by its name, and a file's other columns as they "
                            "come")


def _refuse_in_column(name: str, column: Any) -> None:
    """A column's parts etl would not honour (see `_refuse_what_is_not_honoured`)."""
    if getattr(column, "parsers", None):
        raise SchemaProblem(f"column {name}: parsers= can't be honoured: etl checks and posts each "
                            "cell's value as read; write the rule as a check")
    if getattr(column, "default", None) is not None:
        raise SchemaProblem(f"column {name}: default= can't be honoured: a blank cell is posted "
                            "as no value (declare the column nullable, or not)")
    for check in column.checks:
        if check.groupby is not None:
            raise SchemaProblem(
                f"column {name}: the check {check.name or 'given'} is grouped by {check.groupby!r} "
                "(groupby=): a group's rows may be in several chunks of a file, and etl checks a "
                "file a chunk of rows at a time, so it can't honour it")


def available() -> list[str]:
    schemas = importlib.import_module("etl.schemas")  # installed from schemas/: mypy can't see it
    return sorted(m.name for m in pkgutil.iter_modules(schemas.__path__) if not m.ispkg)


def is_path(name: str) -> bool:
    """Whether `--resource` names a file rather than an installed resource."""
    return name.endswith(".py") or os.sep in name or "/" in name


def load(name: str) -> Resource:
    """The resource called NAME, or read from the file NAME; a usage error (listing the ones
    there are) when there is none, and one line naming the file when it can't be read."""
    from etl.validate.lazy import hypothesis_hidden

    if is_path(name):
        module = _from_file(name)
        default = os.path.splitext(os.path.basename(name))[0]
    else:
        if name not in available():
            raise UsageProblem(
                f"unknown resource {name!r}; available: {', '.join(available()) or 'none'} "
                "(or the path of a schema file, ending in .py)"
            )
        spec = importlib.util.find_spec(f"etl.schemas.{name}")
        with hypothesis_hidden():
            module = _run(name, spec.origin if spec else None,
                          lambda: importlib.import_module(f"etl.schemas.{name}"))
        default = name
    if not hasattr(module, "SCHEMA"):
        raise SchemaProblem(f"{module.__file__}: defines no SCHEMA (a pandera.pandas.DataFrameSchema)")
    try:
        resource = from_schema(_model_of(module, module.SCHEMA), default)
    except SchemaProblem as exc:
        raise SchemaProblem(f"{name}: {exc}") from exc
    # the name a row's identity takes: an installed resource's is its file's, whatever its
    # SCHEMA's name= says; a schema file posting where one posts is that one
    return _as_installed(resource) if is_path(name) else replace(resource, name=name)


def _as_installed(resource: Resource) -> Resource:
    """A schema file that posts where an installed resource posts is that resource to the
    journal, whatever its `name=` says: a row's identity takes the resource's name, and a
    copy of the schema named otherwise would otherwise send again what was already created."""
    for installed in available():
        other = load(installed)
        if other.endpoint.rstrip("/") == resource.endpoint.rstrip("/"):
            return replace(resource, name=other.name)
    return resource


def load_soon(name: str) -> Callable[[], Resource]:
    """`load(NAME)` begun in the background (the schema imports pandas and pandera, a third of
    a second); the function returned waits for it, and raises what it raised."""
    import threading

    got: list[Any] = []

    def work() -> None:
        try:
            got.append(load(name))
        except BaseException as exc:  # handed to the caller, raised there
            got.append(exc)

    thread = threading.Thread(target=work, name="load-schema", daemon=True)
    thread.start()

    def wait() -> Resource:
        thread.join()
        if isinstance(got[0], BaseException):
            raise got[0]
        resource: Resource = got[0]
        return resource

    return wait


def _from_file(path: str) -> ModuleType:
    from etl.validate.lazy import hypothesis_hidden

    if not os.path.isfile(path):
        raise UsageProblem(f"{path}: no such schema file")
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    module_name = f"etl_schema_file_{stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UsageProblem(f"{path}: is not a Python file")
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader
    sys.modules[module_name] = module  # pandera's models look their module up while being made
    with hypothesis_hidden():
        _run(path, os.path.abspath(path), lambda: loader.exec_module(module))
    return module


def _run(where: str, file: str | None, load_it: Any) -> Any:
    """LOAD_IT(), with an error of the schema's own code turned into one line naming WHERE (and
    the line of FILE it stopped at)."""
    try:
        return load_it()
    except UsageProblem:
        raise
    except Exception as exc:
        line, tb = "", exc.__traceback__
        while tb is not None:
            if file and os.path.abspath(tb.tb_frame.f_code.co_filename) == os.path.abspath(file):
                line = f", line {tb.tb_lineno}"
            tb = tb.tb_next
        raise SchemaProblem(f"{where}{line}: the schema can't be loaded: "
                            f"{type(exc).__name__}: {exc}") from exc
