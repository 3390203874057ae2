"""Resource definitions, one module each, exposing `SCHEMA`: a `pandera.pandas.DataFrameSchema`."""
