"""The command line: one module per command, each parsing its options into settings and calling
one library function (etl.run.runs, etl.run.resolving, etl.report.status, ...); the group, the
shared options and the one place errors become a line and an exit code are in `common`. Only
this folder imports click.

Importing a command's module registers it on `main`, in the order the commands were always
registered, so `etl.cli:main` is the whole command line.
"""

# registers each command, in this order
from etl.cli import schema, status, report, validate, import_, reconcile, resolve, sandbox  # noqa: F401, I001
from etl.cli.common import main

__all__ = ["main"]
