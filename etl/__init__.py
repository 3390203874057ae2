"""Import credit-use exports into Nexudus Spaces: validate every row, post the valid ones, report each."""

__version__ = "0.1.0"
