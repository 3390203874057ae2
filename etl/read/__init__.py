"""Reading: a CSV export or a workbook, in whatever encoding it came, into raw chunks of text cells.

Takes in: a path and the read options (encoding, delimiter, sheet). Gives out: tables of raw,
untyped cells with their line numbers (`reading.RawChunk`), and the encoding it chose and why.
Imports only the shared modules at the top of etl (errors, fields). Never imports validation,
posting, the journal, the report, the run, the CLI (click) or the sandbox, and never speaks HTTP.
"""
