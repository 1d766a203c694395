"""Storage: the content-addressed artifact store (Zarr arrays + a transactional index), its cache keys,
and the two small record books kept beside it (the job ledger, the export records).

Nothing here knows stages, Prefect or the job queues; Redis only as a place for the index many hosts share.
"""

from offbeat.storage.entries import ChunkAppender, CorruptEntryError, Entry, EntryWriter
from offbeat.storage.exports import ExportRecords
from offbeat.storage.index import DiskIndex, Index, open_index
from offbeat.storage.keys import KEY_LENGTH, entry_key
from offbeat.storage.ledger import JobLedger
from offbeat.storage.store import ArtifactStore, open_existing_store, open_store, store_config

__all__ = [
    "KEY_LENGTH",
    "ArtifactStore",
    "ChunkAppender",
    "CorruptEntryError",
    "DiskIndex",
    "Entry",
    "EntryWriter",
    "ExportRecords",
    "Index",
    "JobLedger",
    "entry_key",
    "open_existing_store",
    "open_index",
    "open_store",
    "store_config",
]
