"""Reporting: what the runs did, for people: results.csv, errors.csv, summary.json, the HTML
page, `etl report` and `etl status`.

Takes in: each line's outcome (etl.outcomes, derived from the journal) and the run's facts, or a
finished run's files, or a journal opened read-only. Gives out: files and text. May import
etl.ledger (to read a journal) and etl.validate (a resource's columns). Never posts: never
imports etl.post, the run, the CLI (click) or the sandbox, and never speaks HTTP.
"""
