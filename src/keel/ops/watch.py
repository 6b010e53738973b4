"""The watch: while `keel serve` runs, check SLO burn rates and anomalies and raise events.

Every ``slo.check_interval_s`` the watch computes the burn-rate alerts (availability
and latency, each alert named by its SLO and windows, ``latency:60/5``) and the
anomalies from the recorded requests. When an alert starts firing, or a signal turns
anomalous, it is logged, recorded in the audit log (``slo.alert``, ``anomaly.detected``)
and, for alerts, POSTed to ``slo.alert_webhook``; nothing is repeated while the state
holds, and a return to normal is logged and audited too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from keel.audit import AuditEvent, AuditLog
from keel.contract import Contract
from keel.ops.anomaly import detect_anomalies
from keel.ops.slo import compute_slo, notify
from keel.store import Database

__all__ = ["Watch"]

log = logging.getLogger(__name__)


class Watch:
    """Raises SLO and anomaly events on state changes."""

    def __init__(
        self, contract: Contract, *, db: Database, audit: AuditLog, clock: Callable[[], float] = time.time
    ) -> None:
        self._contract = contract
        self._db = db
        self._audit = audit
        self._clock = clock
        self._firing: set[str] = set()
        self._anomalous: set[str] = set()

    def check(self) -> list[str]:
        """One check; returns the events it raised (``slo.alert:latency:60/5``, ``anomaly.detected:cost``...)."""
        now = self._clock()
        events: list[str] = []
        report = compute_slo(self._db, self._contract.slo, now=now)
        firing = {a.key for a in report.firing}
        started = firing - self._firing
        if started:
            problems = notify(
                report, webhook=self._contract.slo.alert_webhook, service=self._contract.name, only=started
            )
            for name in sorted(started):
                alert = next(a for a in report.alerts if a.key == name)
                self._event("slo.alert", name, {**alert.to_dict(), "notify_problems": problems})
                events.append(f"slo.alert:{name}")
        for name in sorted(self._firing - firing):
            self._event("slo.resolved", name, {})
            log.info("SLO alert %s resolved", name)
            events.append(f"slo.resolved:{name}")
        self._firing = firing
        anomalies = detect_anomalies(self._db, now=now)
        anomalous = {a.signal for a in anomalies if a.anomalous}
        for a in anomalies:
            if a.signal in anomalous - self._anomalous:
                log.warning("anomaly: %s is %.6g against a baseline of %.6g", a.signal, a.value, a.baseline)
                self._event("anomaly.detected", a.signal, a.to_dict())
                events.append(f"anomaly.detected:{a.signal}")
        for signal in sorted(self._anomalous - anomalous):
            self._event("anomaly.resolved", signal, {})
            events.append(f"anomaly.resolved:{signal}")
        self._anomalous = anomalous
        return events

    async def run(self, interval_s: float) -> None:
        """Check every ``interval_s`` seconds until cancelled; a failed check is logged, never fatal."""
        while True:
            try:
                await asyncio.to_thread(self.check)
            except Exception:  # the watch must never take the service down
                log.exception("SLO and anomaly check failed")
            await asyncio.sleep(interval_s)

    def _event(self, action: str, subject: str, data: dict[str, object]) -> None:
        self._audit.record(AuditEvent(action=action, actor="system", tenant="*", subject=subject, data=data))
