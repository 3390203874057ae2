"""Resource definitions, one module each: `RESOURCE = etl.resources.Resource(...)`."""
