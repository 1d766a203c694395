"""Leases: who computes a store entry now, so that each entry is computed once across every process and host
sharing the index.

A lease is an expiring index key holding a random token (Redis: SET NX PX). Its holder renews it every third of
its time from a background thread while it computes, and drops it when done, whether it committed or failed. A
process finding the lease held waits, polling the index, until the entry is committed (then it reads it) or the
lease is gone: the holder failed and let go, or died (SIGKILL, power loss) and its lease ran out; then it takes
the lease itself. A holder that stalls past its lease (a frozen VM) may see another take over; both may then
compute, but the commit is put-if-absent, so the store still ends with exactly one entry.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType

from offbeat.storage.index import Index

log = logging.getLogger("offbeat.store")


class Lease:
    """A lease to take under `name`, held by `holder` (host and pid, for the operator) and a random token."""

    def __init__(self, index: Index, name: str, ttl_sec: float, holder: str) -> None:
        self.index, self.name, self.ttl_sec = index, name, ttl_sec
        self.token = f"{holder}:{uuid.uuid4().hex[:12]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; once taken, it is renewed until the `with` block ends."""
        return self.index.take_lease(self.name, self.token, self.ttl_sec)

    def __enter__(self) -> Lease:
        self._thread = threading.Thread(target=self._keep, name=f"lease-{self.name[-12:]}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.index.drop_lease(self.name, self.token)
        except Exception as error:  # it expires by itself; a failed release only delays a waiter
            log.warning("lease %s not released (%s); it expires in %.0f s", self.name, error, self.ttl_sec)

    def _keep(self) -> None:
        while not self._stop.wait(self.ttl_sec / 3):
            try:
                if not self.index.renew_lease(self.name, self.token, self.ttl_sec) and not self.lost:
                    self.lost = True
                    log.warning("lease %s lapsed: another process may compute the same entry", self.name)
            except Exception as error:  # the index is away for a moment; the next renewal may reach it
                log.warning("lease %s not renewed (%s)", self.name, error)


def once(
    index: Index,
    name: str,
    ttl_sec: float,
    holder: str,
    done: Callable[[], bool],
    work: Callable[[], None],
    poll_max_sec: float = 1.0,
) -> bool:
    """Run `work` unless `done()`, once among every process sharing `index`: True when this process did it,
    False when `done()` became true (another process did it). While another holds the lease, wait for it,
    polling every `poll_max_sec` at most (and at most a quarter of the lease), as long as that lease is kept."""
    poll_max = min(poll_max_sec, ttl_sec / 4)
    while True:
        if done():
            return False
        lease = Lease(index, name, ttl_sec, holder)
        if lease.acquire():
            with lease:
                if done():  # committed between the look above and taking the lease
                    return False
                work()
                return True
        log.info("%s is held by %s: waiting for its commit", name, index.lease_holder(name))
        delay = min(0.02, poll_max)
        while index.lease_holder(name) is not None and not done():
            time.sleep(delay)
            delay = min(delay * 2, poll_max)
