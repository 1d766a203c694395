"""The documented failure vocabulary: every failed result carries one of these codes.

Messages and log lines often quote what a producer sent (a path, a title, a JSON fragment). Producers are not
trusted to keep that small, so every quote goes through `bounded`: one hostile 5 MB path must not become a
10 MB result and 15 MB of log. Nor are they trusted to send printable text: a quote bound for a log line goes
through `loggable`, which also escapes newlines and other control characters, so no producer can forge log lines.
"""

from __future__ import annotations

import traceback
from enum import StrEnum

# The most characters of one quoted value (or of one whole message) that reach a result or a log line.
QUOTE_CHARS = 200
MESSAGE_CHARS = 1000


class ErrorCode(StrEnum):
    """Machine-readable reasons a job failed (documented in README.md, part of the wire contract)."""

    INVALID_JOB = "invalid_job"  # unparseable JSON, not an object, missing or wrong-typed fields, over a limit
    INVALID_PATH = "invalid_path"  # escapes the shared mount, names a directory, too long, a symlink loop
    FILE_NOT_FOUND = "file_not_found"
    UNSUPPORTED_AUDIO = "unsupported_audio"  # empty, not audio, or a container no decoder here reads
    CORRUPT_AUDIO = "corrupt_audio"  # recognised audio container that is truncated, damaged, or not numbers
    AUDIO_TOO_SHORT = "audio_too_short"
    AUDIO_TOO_LONG = "audio_too_long"  # longer than OFFBEAT_MAX_AUDIO_SEC
    SILENT_AUDIO = "silent_audio"  # nothing above the silence threshold
    TOO_MANY_ATTEMPTS = "too_many_attempts"  # delivered OFFBEAT_MAX_DELIVERY_ATTEMPTS times unanswered: dead letter
    CONFIGURATION = "configuration"  # the engine is not set up to run (a missing model): fix it, then retry
    INTERNAL = "internal"  # a bug or an environment fault; retrying may help


def _cut(value: object, limit: int) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text


def bounded(value: object, limit: int = QUOTE_CHARS) -> str:
    """`str(value)` cut to `limit` characters, saying how much was left out (so a cut is never mistaken for
    the whole); lone surrogates (a path from JSON) are escaped so the text can always be encoded."""
    return _cut(value, limit).encode("utf-8", "backslashreplace").decode("utf-8")


def loggable(value: object, limit: int = QUOTE_CHARS) -> str:
    """`bounded(value)` for a log line: the one escaping of what a producer sent (a path, a message quoting one)
    before it is logged. A newline in a job's path would otherwise start a log line of the producer's choosing
    (a forged "job 9: completed result published"), a carriage return or an ANSI sequence rewrite the operator's
    terminal. Every character that is not printable (control characters, line and paragraph separators, lone
    surrogates, bidi overrides) is written as Python writes it in a string literal (`\\n`, `\\x1b`, `\\u2028`),
    and a backslash as two, so an escape in the log always means the character, never a backslash sent as text.
    Printable text (accents, other scripts, emoji) stays as it is."""
    return "".join(char if char.isprintable() and char != "\\" else repr(char)[1:-1] for char in _cut(value, limit))


def bounded_traceback(exc: BaseException, limit: int = 4000) -> str:
    """The traceback of `exc` for a log line, with the exception's own message bounded (a message quoting a
    huge input would otherwise be logged whole, and once per chained exception) and `loggable` (it may quote
    what a producer sent)."""
    frames = "".join(traceback.format_tb(exc.__traceback__))[-limit:]
    return f"{frames}{type(exc).__name__}: {loggable(exc, MESSAGE_CHARS)}"


class AnalysisError(Exception):
    """A failure that becomes a failed result, with a message meant for a person (bounded in length)."""

    def __init__(self, code: ErrorCode, message: str, *, stage: str | None = None, retryable: bool = False) -> None:
        message = bounded(message, MESSAGE_CHARS)
        super().__init__(message)
        self.code = code
        self.message = message
        self.stage = stage
        self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
