"""Posting: the API's HTTP client, the pacer, and reconciliation (asking the server which rows it
already holds). The only stage that speaks HTTP, and only `posting` imports requests.

Takes in: valid rows and the journal. Gives out: answers, recorded in the journal as events.
Reconciliation lives here, not in etl.ledger, because it needs the client and the journal: this
stage imports etl.ledger (and etl.validate, for a resource's columns), never the other way, so
the arrows stay one-way. Never imports the report, the run, the CLI (click) or the sandbox.
"""
