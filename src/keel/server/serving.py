"""uvicorn with a drain phase: SIGTERM first drains the replica, then stops it.

Plain uvicorn closes its listening sockets on SIGTERM, so a load balancer sees
refused connections rather than a replica that says it is going away. Here the first
SIGTERM (or Ctrl-C) only starts draining: ``/readyz`` answers 503 at once, new
requests get ``503 shutting_down`` with ``Retry-After``, and the requests already
admitted or queued run on. When none is left, or the grace period is over, uvicorn's
own shutdown follows (its graceful timeout gets what is left of the grace period),
then the app's lifespan flushes traces, spans and the audit log. A drained SIGTERM
exits 0; a second signal stops waiting for the drain, a third (Ctrl-C) forces the exit.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable
from types import FrameType

import uvicorn

from keel.server.admission import Admission

__all__ = ["DrainingServer"]

log = logging.getLogger(__name__)

MIN_FINAL_GRACE_S = 1
"""What uvicorn's own shutdown always gets for connections still open (streams ending, keep-alives closing)."""


class DrainingServer(uvicorn.Server):
    """A uvicorn server that drains ``admission`` for up to ``grace_s`` before it shuts down."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        admission: Admission,
        grace_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config)
        self._admission = admission
        self._grace_s = grace_s
        self._clock = clock
        self._drain_started: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Start draining on the first signal; later ones go to uvicorn (stop now, then force)."""
        if self._drain_started is None and not self.should_exit:
            self._drain_started = self._clock()
            self._admission.start_draining()
            log.warning(
                "draining: %d requests in flight, %d queued; stopping within %g s",
                self._admission.in_flight,
                self._admission.queued,
                self._grace_s,
            )
            return
        if sig == signal.SIGTERM and not self.should_exit:
            self.should_exit = True  # stop waiting for the drain; uvicorn's graceful timeout still applies
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        """Once draining, exit when the replica is idle or the grace period is over."""
        if self._drain_started is not None and not self.should_exit:
            elapsed = self._clock() - self._drain_started
            if self._admission.idle or elapsed >= self._grace_s:
                self.config.timeout_graceful_shutdown = max(MIN_FINAL_GRACE_S, math.ceil(self._grace_s - elapsed))
                self.should_exit = True
        return await super().on_tick(counter)
