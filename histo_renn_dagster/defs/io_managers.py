"""IO managers: pandas DataFrames as Parquet files in the lake's ``tables/`` folder."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from histo_renn_dagster.core.atomic import atomic_path
from histo_renn_dagster.defs.resources import LayoutResource


class ParquetIOManager(dg.ConfigurableIOManager):
    """Stores each unpartitioned DataFrame asset at ``<lake>/tables/<asset name>.parquet``.

    Writes are atomic (temp file + rename) so a failed run never leaves a half-written table that
    a downstream asset could read.
    """

    layout: LayoutResource

    def _path(self, context: dg.OutputContext | dg.InputContext):
        if context.has_asset_partitions:
            raise dg.Failure("ParquetIOManager stores unpartitioned tables only")
        return self.layout.lake().table_path(context.asset_key.path[-1])

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise dg.Failure(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}, expected a DataFrame"
            )
        path = self._path(context)
        with atomic_path(path) as tmp:
            obj.to_parquet(tmp, index=False)
        context.add_output_metadata(
            {
                "path": dg.MetadataValue.path(str(path)),
                "dagster/row_count": len(obj),
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(str(c), str(t)) for c, t in obj.dtypes.items()]
                ),
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        path = self._path(context)
        if not path.exists():
            raise dg.Failure(
                f"table {path} does not exist: materialize {context.asset_key.to_user_string()} first"
            )
        return pd.read_parquet(path)
