"""The ledger: the journal (SQLite or PostgreSQL; its row look-ups in `lookups`), the row's life
(`life`), a row's identity and keys, the server's storage rules, and the fences between runs.

Takes in: events (a row about to be sent, an answer, a verdict, a stop). Gives out: each row's
state, read back by the run, the report and `etl status`. May import etl.validate (a resource's
columns, exact values) and the shared modules. Never imports posting or reconciliation (etl.post),
the report, the run, the CLI (click) or the sandbox, and never speaks HTTP: asking the server
what it holds is etl.post's, which records the answers here.
"""
