"""A background writer: records are queued by the request path and committed in batches.

``submit`` returns at once; one thread takes whatever is queued (up to a batch) and
hands it to ``commit``, which writes it in one transaction. Once an item arrives the
thread lingers a moment (``linger``, :data:`LINGER_S` by default) so that the items
of concurrent or closely following requests share one transaction: a lightly loaded
service then commits a few records at a time instead of waking a thread and opening a
transaction for each. ``flush`` waits for the queue to drain and ``close`` drains it
and stops the thread (both cut the linger short), so nothing queued is lost on an
orderly shutdown.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["LINGER_S", "BackgroundWriter"]

log = logging.getLogger(__name__)

T = TypeVar("T")

LINGER_S = 0.01
"""How long the writer waits after the first queued item for others to join its batch."""


class _Stop:
    pass


_STOP = _Stop()


class BackgroundWriter(Generic[T]):
    """Commits queued items in batches on its own thread."""

    def __init__(
        self,
        commit: Callable[[list[T]], object],
        *,
        name: str,
        batch_size: int = 64,
        linger: float = LINGER_S,
        on_done: Callable[[list[T]], None] | None = None,
    ) -> None:
        self._commit = commit
        self._linger = linger
        self._on_done = on_done
        self._name = name
        self._batch_size = batch_size
        self._queue: queue.Queue[T | _Stop] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._hurry = threading.Event()
        """Set by ``flush`` and ``close``: commit what is queued without lingering."""

    def submit(self, item: T) -> None:
        """Queue ``item`` for the next batch."""
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                    self._thread.start()
        self._queue.put(item)

    def flush(self) -> None:
        """Block until everything queued so far is committed (or has failed and been logged)."""
        if self._thread is not None:
            self._hurry.set()
            self._queue.join()

    def close(self) -> None:
        """Commit everything queued and stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._hurry.set()
            self._queue.put(_STOP)
            thread.join()

    def _loop(self) -> None:
        while True:
            batch: list[T | _Stop] = [self._queue.get()]
            if self._linger > 0 and not isinstance(batch[0], _Stop) and self._queue.qsize() < self._batch_size - 1:
                self._hurry.wait(self._linger)  # not waiting on the queue: a submit meanwhile wakes nobody
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            items = [item for item in batch if not isinstance(item, _Stop)]
            try:
                if items:
                    self._commit(items)
            except Exception:  # a background write must never take the service down
                log.exception("%s: could not write %d record(s)", self._name, len(items))
            finally:
                if self._on_done is not None and items:
                    self._on_done(items)
                if self._queue.empty():
                    self._hurry.clear()
                for _ in batch:
                    self._queue.task_done()
            if len(items) != len(batch):
                return
