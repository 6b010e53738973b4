"""What a detected drift does, by contract (``drift.on_drift``).

A drift is always recorded in the audit log (``drift.detected``). Then, as the
contract says:

* ``export_finetune`` writes a fine-tuning export (:func:`keel.ops.finetune.export_finetune`,
  PII-redacted and de-duplicated) into a new timestamped folder under
  ``drift.export_dir``; its manifest names the drift that triggered it (the dimensions,
  the threshold, the ``drift.detected`` record), and the export is audited
  (``finetune.export``, with its path and counts);
* ``alert`` logs the drift and POSTs it to ``slo.alert_webhook`` when one is configured
  (naming the export, when there is one).

Failing to deliver the alert or to write the export is reported, never raised: the
drift is already on record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.audit import AuditEvent, AuditLog
from keel.contract import Contract
from keel.ops.drift import DriftReport
from keel.ops.finetune import ExportTrigger, FinetuneManifest, export_finetune
from keel.ops.webhook import post_alert
from keel.store import Database

__all__ = ["DriftActions", "act_on_drift", "drift_message"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DriftActions:
    """What was done about one drift."""

    audit_seq: int
    """The ``drift.detected`` audit record."""
    alerted: bool = False
    export_dir: Path | None = None
    manifest: FinetuneManifest | None = None
    problems: list[str] = field(default_factory=list)
    """Alerts not delivered, exports not written."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "audit_seq": self.audit_seq,
            "alerted": self.alerted,
            "export_dir": None if self.export_dir is None else str(self.export_dir),
            "export": None if self.manifest is None else self.manifest.to_dict(),
            "problems": self.problems,
        }


def drift_message(report: DriftReport, contract: Contract) -> str:
    """One line naming the dimensions that drifted and by how much."""
    settings = contract.drift
    dims = ", ".join(f"{name} {report.divergence[name]:.3f}" for name in report.drifted)
    return (
        f"{contract.name}: traffic drifted over the last {settings.current_days:g} day(s) against the "
        f"{settings.reference_days:g} before: {dims} (KL divergence, threshold {settings.threshold:g})"
    )


def act_on_drift(
    report: DriftReport,
    contract: Contract,
    *,
    root: Path,
    db: Database,
    audit: AuditLog,
    redact: Callable[[str], str],
    now: float | None = None,
    timeout_s: float = 5.0,
) -> DriftActions:
    """Audit the drift in ``report`` and do what ``contract.drift.on_drift`` asks; ``root`` is the project."""
    if not report.drifted:
        raise ValueError("the report shows no drift")
    now = time.time() if now is None else now
    settings = contract.drift
    seq = audit.record_now(
        AuditEvent(
            action="drift.detected",
            actor="system",
            tenant="*",
            subject=",".join(report.drifted),
            data={**report.to_dict(), "on_drift": list(settings.on_drift)},
        )
    )
    problems: list[str] = []
    out_dir: Path | None = None
    manifest: FinetuneManifest | None = None
    if "export_finetune" in settings.on_drift:
        trigger = ExportTrigger(
            kind="drift", dimensions=tuple(report.drifted), threshold=settings.threshold, audit_seq=seq
        )
        try:
            out_dir = _new_folder(root / settings.export_dir, now)
            manifest = export_finetune(db, out_dir, redact=redact, trigger=trigger)
        except OSError as exc:
            log.error("drift: the fine-tune export could not be written: %s", exc)
            problems.append(f"export not written: {exc.strerror or type(exc).__name__}")
            out_dir = None
        else:
            relative = out_dir.relative_to(root).as_posix()
            audit.record_now(
                AuditEvent(
                    action="finetune.export",
                    actor="system",
                    tenant="*",
                    subject=relative,
                    data={
                        "path": relative,
                        "examples": manifest.examples,
                        "from_corrections": manifest.from_corrections,
                        "from_approvals": manifest.from_approvals,
                        "duplicates_dropped": manifest.duplicates_dropped,
                        "skipped": manifest.skipped,
                        "sha256": manifest.sha256,
                        "trigger": trigger.to_dict(),
                    },
                )
            )
    alerted = False
    if "alert" in settings.on_drift:
        message = drift_message(report, contract)
        if out_dir is not None:
            message += f"; fine-tune export written to {out_dir.relative_to(root).as_posix()}"
        log.warning("drift: %s", message)
        alerted = True
        webhook = contract.slo.alert_webhook
        if webhook is not None:
            payload = {
                "service": contract.name,
                "alert": "drift",
                "message": message,
                "audit_seq": seq,
                "export_dir": None if out_dir is None else out_dir.relative_to(root).as_posix(),
                **report.to_dict(),
            }
            problem = post_alert(webhook, payload, timeout_s=timeout_s)
            if problem is not None:
                problems.append(problem)
    return DriftActions(audit_seq=seq, alerted=alerted, export_dir=out_dir, manifest=manifest, problems=problems)


def _new_folder(parent: Path, now: float) -> Path:
    """A folder under ``parent`` named after ``now`` (UTC), never one that exists already."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    for n in range(1000):
        candidate = parent / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free folder name for {stamp} under {parent}")
