"""The background writer: batches what arrives together, loses nothing on flush or close, survives a failed write."""

from __future__ import annotations

import threading

import pytest

from keel.store.writer import BackgroundWriter


class _Sink:
    def __init__(self, *, fail_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def commit(self, items: list[int]) -> None:
        with self.lock:
            if self.fail_first:
                self.fail_first = False
                raise RuntimeError("disk full")
            self.batches.append(list(items))

    @property
    def items(self) -> list[int]:
        return [item for batch in self.batches for item in batch]


def test_items_submitted_within_the_linger_share_one_transaction() -> None:
    sink = _Sink()
    writer: BackgroundWriter[int] = BackgroundWriter(sink.commit, name="test-writer", linger=0.5)
    for i in range(10):
        writer.submit(i)
    writer.flush()
    assert sink.batches == [list(range(10))]
    writer.close()


def test_without_a_linger_each_item_is_committed_as_soon_as_the_thread_takes_it() -> None:
    sink = _Sink()
    writer: BackgroundWriter[int] = BackgroundWriter(sink.commit, name="test-writer", linger=0.0)
    for i in range(3):
        writer.submit(i)
        writer.flush()
    assert sink.batches == [[0], [1], [2]]
    writer.close()


def test_batches_never_exceed_the_batch_size() -> None:
    sink = _Sink()
    writer: BackgroundWriter[int] = BackgroundWriter(sink.commit, name="test-writer", batch_size=4, linger=0.2)
    for i in range(10):
        writer.submit(i)
    writer.close()
    assert sink.items == list(range(10))
    assert max(len(b) for b in sink.batches) <= 4


def test_close_commits_everything_still_queued() -> None:
    sink = _Sink()
    writer: BackgroundWriter[int] = BackgroundWriter(sink.commit, name="test-writer", linger=5.0)
    writer.submit(1)
    writer.submit(2)
    closing = threading.Thread(target=writer.close)
    closing.start()
    closing.join(timeout=2.0)  # close cuts the linger short
    assert not closing.is_alive()
    assert sink.items == [1, 2]


def test_flush_cuts_the_linger_short() -> None:
    sink = _Sink()
    writer: BackgroundWriter[int] = BackgroundWriter(sink.commit, name="test-writer", linger=5.0)
    writer.submit(1)
    flushing = threading.Thread(target=writer.flush)
    flushing.start()
    flushing.join(timeout=2.0)
    assert not flushing.is_alive() and sink.items == [1]
    writer.close()


def test_a_failed_write_is_logged_and_the_writer_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    sink = _Sink(fail_first=True)
    writer: BackgroundWriter[int] = BackgroundWriter(sink.commit, name="test-writer", linger=0.0)
    writer.submit(1)
    writer.flush()
    writer.submit(2)
    writer.close()
    assert sink.items == [2]
    assert "test-writer: could not write 1 record(s)" in caplog.text
