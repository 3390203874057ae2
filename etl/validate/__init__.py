"""Validating: a resource's pandera schema, compiled into checks, run over the raw chunks.

Takes in: raw chunks from etl.read and a resource (a schema file of schemas/). Gives out: each
row valid, with its typed values, or invalid, with its messages. May import etl.read and the
shared modules. Never imports posting, the journal (etl.ledger), the report, the run, the CLI
(click) or the sandbox, and never speaks HTTP. Its package imports nothing: pandera loads on
first need (`lazy`).
"""
