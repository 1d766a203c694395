"""Storage: the content-addressed artifact store (Zarr arrays + a transactional index), its cache keys,
and the two small record books kept beside it (the job ledger, the export records).

Nothing here knows stages, Prefect or Redis.
"""

from offbeat.storage.entries import ChunkAppender, CorruptEntryError, Entry, EntryWriter
from offbeat.storage.exports import ExportRecords
from offbeat.storage.keys import KEY_LENGTH, entry_key
from offbeat.storage.ledger import JobLedger
from offbeat.storage.store import ArtifactStore, open_store

__all__ = [
    "KEY_LENGTH",
    "ArtifactStore",
    "ChunkAppender",
    "CorruptEntryError",
    "Entry",
    "EntryWriter",
    "ExportRecords",
    "JobLedger",
    "entry_key",
    "open_store",
]
