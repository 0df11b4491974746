"""The ``file`` destination: JSONL or Parquet files in Hive-style partitions, local or fsspec."""

from eventyard.destinations.file.destination import FileDestination
from eventyard.destinations.file.settings import FileSettings

__all__ = ["FileDestination", "FileSettings"]
