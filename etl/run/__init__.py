"""A run, stage by stage: the dry run (`pipeline`), the account preflight (`checks`), the import
(`importing`, made of `first_pass`, `keyed_rows`, `checking_rows`, `ahead`, `sending` and
`end_of_run` on `import_base`; `import_rows` holds what it works with, `lines` its report lines),
`etl reconcile` and `etl resolve` (`resolving`), from settings (`runs`), built on `connecting`,
which reaches the API and its journal.

Takes in: settings (what the CLI parsed, or a Python caller's). Gives out: the run's record and
exit status, and the files etl.report writes. It drives the stages: it may import etl.read,
etl.validate, etl.ledger, etl.post and etl.report, and none of them imports it. Never imports the
CLI (click) or the sandbox.
"""
