"""The pandera dtype of an amount: an exact decimal of any scale.

pandera's own `Decimal` has a fixed precision and scale; an export's amounts are written with
as many decimals as the person typing them liked (`2.5`, `0.125`), and the server keeps them as
doubles. An `Amount` column holds Python `Decimal`s (or null) in an `object` column, so a
check compares exactly: `Check.le(100)` refuses `100.0000001`.

    import pandera.pandas as pa
    from etl.dtypes import Amount

    pa.Column(Amount, checks=pa.Check.gt(0))
"""

from __future__ import annotations

import decimal
from typing import Any

import pandas as pd
from pandera import dtypes
from pandera.engines import pandas_engine


@pandas_engine.Engine.register_dtype
@dtypes.immutable
class Amount(pandas_engine.DataType):
    """An exact decimal amount: `decimal.Decimal` values in an object column."""

    type = pd.api.types.pandas_dtype(object)

    def check(self, pandera_dtype: Any, data_container: Any = None) -> Any:
        if data_container is None:
            return getattr(pandera_dtype, "type", None) == self.type
        return data_container.map(
            lambda v: v is None or v is pd.NA or isinstance(v, decimal.Decimal)).astype(bool)

    def coerce(self, data_container: Any) -> Any:
        return data_container.map(
            lambda v: v if v is None or v is pd.NA or isinstance(v, decimal.Decimal)
            else decimal.Decimal(str(v)))

    def __str__(self) -> str:
        return "amount"
