"""Type-checked uses of kms_reencrypt.dask (mypy --strict, never
executed); Dask ships its own annotations (py.typed)."""

from __future__ import annotations

from pathlib import Path
from typing import assert_type

import dask.bag
import dask.dataframe

from kms_reencrypt import ClientSettings, RotationConfig
from kms_reencrypt.dask import (
    OutputNames,
    TaskCancelledError,
    rotate_bag,
    rotate_dataframe,
)


def frame(
    data: dask.dataframe.DataFrame, journal: Path
) -> dask.dataframe.DataFrame:
    rotated = rotate_dataframe(
        data,
        destination_key_id="alias/new",
        id_column="id",
        ciphertext_column="data_key",
        client=ClientSettings(region_name="eu-west-1"),
        context_columns={"table": "table_name"},
        source_key_id_column="key_arn",
        base64=True,
        prefix="rotated_",
        grant_tokens=["token"],
        journal_dir=journal,
        rate=2000.0,
        workers=8,
        max_failures=0.01,
        config=RotationConfig(max_attempts=5),
    )
    assert_type(rotated, dask.dataframe.DataFrame)
    return rotated


def bag(records: dask.bag.Bag) -> dask.bag.Bag:
    rotated = rotate_bag(
        records,
        destination_key_id="alias/new",
        context_field=None,
        destination_encryption_context={"table": "orders"},
        journal_dir="/shared/journal",
        dry_run=True,
    )
    assert_type(rotated, dask.bag.Bag)
    return rotated


def added_columns() -> tuple[str, str, str, str, str]:
    names = OutputNames(prefix="rotated_")
    assert_type(names.status, str)
    assert issubclass(TaskCancelledError, Exception)
    return names.all()
