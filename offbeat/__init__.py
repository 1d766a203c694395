"""The Offbeat Engine: structured, cached analysis of long DJ mixes."""

import ctypes
import ctypes.util
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("offbeat")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+local"


def _tune_malloc() -> None:
    """Keep glibc's heap from growing with the pipeline's threads.

    By default glibc gives each thread that contends for the heap an arena of its own (up to 8 per core);
    the stages' threads and TensorFlow's then spread block-sized arrays over many arenas that fragment and
    never shrink. Two arenas keep the peak resident memory of an analysis markedly lower at no measurable
    cost in speed. (A low fixed mmap threshold would save about as much again, but every large temporary then
    costs fresh page faults, and decoding slows down markedly.) Done at import, before the stages start their
    threads; a no-op where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_arena_max = -8  # from glibc's malloc.h
    mallopt(m_arena_max, 2)


_tune_malloc()

from offbeat.console import quiet_tensorflow  # noqa: E402 - after the allocator is tuned, before anything else

quiet_tensorflow()  # TensorFlow's start-up notices off stderr (see offbeat.console)
