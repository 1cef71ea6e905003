"""Rotate ciphertexts held in Dask collections, on a Dask cluster.

Needs the ``dask`` extra (``pip install 'kms_reencrypt[dask]'``)::

    import dask.dataframe as dd
    from distributed import Client
    from kms_reencrypt import ClientSettings
    from kms_reencrypt.dask import rotate_dataframe

    client = Client("tcp://scheduler:8786")
    frame = dd.read_parquet("/shared/secrets/", dtype_backend="pyarrow")
    rotated = rotate_dataframe(
        frame,
        destination_key_id="alias/secrets-2026",
        id_column="id",
        ciphertext_column="data_key",
        client=ClientSettings(region_name="eu-west-1"),
        journal_dir="/shared/rotation-journal",
        rate=2000,
    )
    rotated.to_parquet("/shared/secrets-rotated/")

Each partition goes through the same engine as ``kms_reencrypt.rotate``
(validation, error mapping, retries, outcomes) on the worker that holds
it, with a client that worker builds from ``ClientSettings``; one token
bucket caps the calls of the whole cluster; per-partition journals let a
rerun skip what finished. See docs/dask.md.
"""

from __future__ import annotations

try:
    import dask as _dask  # noqa: F401
    import distributed as _distributed  # noqa: F401
except ModuleNotFoundError as error:  # pragma: no cover - needs dask missing
    raise ModuleNotFoundError(
        "kms_reencrypt.dask needs Dask: pip install 'kms_reencrypt[dask]'.",
        name=error.name,
    ) from error

from ._collections import rotate_bag, rotate_dataframe
from ._journal import PartitionJournal
from ._partition import OutputNames, TaskCancelledError
from ._ratecap import TokenBucket

__all__ = [
    "OutputNames",
    "PartitionJournal",
    "TaskCancelledError",
    "TokenBucket",
    "rotate_bag",
    "rotate_dataframe",
]
