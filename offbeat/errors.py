"""The documented failure vocabulary: every failed result carries one of these codes."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Machine-readable reasons a job failed (documented in README.md, part of the wire contract)."""

    INVALID_JOB = "invalid_job"  # unparseable JSON, not an object, missing or wrong-typed fields
    INVALID_PATH = "invalid_path"  # escapes the shared mount, or names a directory
    FILE_NOT_FOUND = "file_not_found"
    UNSUPPORTED_AUDIO = "unsupported_audio"  # empty, not audio, or a container no decoder here reads
    CORRUPT_AUDIO = "corrupt_audio"  # recognised audio container that is truncated or damaged
    AUDIO_TOO_SHORT = "audio_too_short"
    SILENT_AUDIO = "silent_audio"  # nothing above the silence threshold
    INTERNAL = "internal"  # a bug or an environment fault; retrying may help


class AnalysisError(Exception):
    """A failure that becomes a failed result, with a message meant for a person."""

    def __init__(self, code: ErrorCode, message: str, *, stage: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.stage = stage
        self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
