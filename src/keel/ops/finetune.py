"""A fine-tuning dataset from production: approved answers and people's corrections.

An interaction is taken when someone rated its answer ``up`` (the answer, as served)
or wrote a correction (the correction replaces the answer). Questions and answers come
from the trace store, where they are already PII-redacted; they are redacted again on
the way out, de-duplicated on their normalised text, and written as chat-format JSONL
with a manifest (counts, time range, the apps, models and prompts they came from, the
file's hash, and what triggered the export: a person, or a drift).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from keel.store import Database

__all__ = ["ExportTrigger", "FinetuneManifest", "export_finetune"]

DATASET = "finetune.jsonl"
MANIFEST = "manifest.json"


@dataclass(frozen=True, kw_only=True)
class ExportTrigger:
    """Why an export was written: asked for (``manual``), or started by a detected drift."""

    kind: Literal["manual", "drift"] = "manual"
    dimensions: tuple[str, ...] = ()
    """The dimensions that drifted."""
    threshold: float | None = None
    audit_seq: int | None = None
    """The ``drift.detected`` audit record that started the export."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        if self.kind == "manual":
            return {"kind": "manual"}
        return {
            "kind": self.kind,
            "dimensions": list(self.dimensions),
            "threshold": self.threshold,
            "audit_seq": self.audit_seq,
        }


@dataclass(frozen=True, kw_only=True)
class FinetuneManifest:
    """What an export holds."""

    examples: int
    from_corrections: int
    from_approvals: int
    duplicates_dropped: int
    skipped: int
    first_at: float | None
    last_at: float | None
    apps: list[str]
    models: list[str]
    prompts: list[str]
    sha256: str
    trigger: ExportTrigger = ExportTrigger()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "examples": self.examples,
            "from_corrections": self.from_corrections,
            "from_approvals": self.from_approvals,
            "duplicates_dropped": self.duplicates_dropped,
            "skipped": self.skipped,
            "time_range": [self.first_at, self.last_at],
            "apps": self.apps,
            "models": self.models,
            "prompts": self.prompts,
            "dataset": DATASET,
            "sha256": self.sha256,
            "format": "chat messages (user, assistant), one JSON object per line",
            "trigger": self.trigger.to_dict(),
        }


def _key(question: str, answer: str) -> str:
    normal = " ".join(question.lower().split()) + "\x00" + " ".join(answer.lower().split())
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


def export_finetune(
    db: Database,
    out_dir: Path,
    *,
    redact: Callable[[str], str],
    since: float | None = None,
    tenant: str | None = None,
    trigger: ExportTrigger | None = None,
) -> FinetuneManifest:
    """Write ``finetune.jsonl`` and ``manifest.json`` into ``out_dir``; the manifest records the ``trigger``."""
    sql = (
        "SELECT f.request_id, f.rating, f.correction, f.created_at, t.app, t.data_json FROM feedback f"
        " JOIN traces t USING (request_id) WHERE (f.rating = 'up' OR f.correction IS NOT NULL)"
    )
    args: list[object] = []
    if since is not None:
        sql += " AND f.created_at >= ?"
        args.append(since)
    if tenant is not None:
        sql += " AND f.tenant = ?"
        args.append(tenant)
    sql += " ORDER BY f.created_at"
    seen: set[str] = set()
    lines: list[str] = []
    corrections = approvals = duplicates = skipped = 0
    times: list[float] = []
    apps: set[str] = set()
    models: set[str] = set()
    prompts: set[str] = set()
    for row in db.connection().execute(sql, args):
        data = json.loads(row["data_json"])
        question = redact(str(data.get("request", {}).get("question") or "")).strip()
        response = data.get("response", {})
        if row["correction"]:
            answer = redact(row["correction"]).strip()
        elif response.get("mode") == "answer":
            answer = redact(str(response.get("answer") or "")).strip()
        else:
            answer = ""
        if not question or not answer:
            skipped += 1
            continue
        key = _key(question, answer)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        if row["correction"]:
            corrections += 1
        else:
            approvals += 1
        times.append(float(row["created_at"]))
        apps.add(row["app"])
        if response.get("model"):
            models.add(str(response["model"]))
        if response.get("prompt"):
            prompts.add(str(response["prompt"]))
        example = {
            "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
            "metadata": {
                "request_id": row["request_id"],
                "app": row["app"],
                "source": "correction" if row["correction"] else "approved",
            },
        }
        lines.append(json.dumps(example, ensure_ascii=False, sort_keys=True))
    out_dir.mkdir(parents=True, exist_ok=True)
    body = ("\n".join(lines) + "\n") if lines else ""
    tmp = out_dir / (DATASET + ".tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(out_dir / DATASET)
    manifest = FinetuneManifest(
        examples=len(lines),
        from_corrections=corrections,
        from_approvals=approvals,
        duplicates_dropped=duplicates,
        skipped=skipped,
        first_at=min(times) if times else None,
        last_at=max(times) if times else None,
        apps=sorted(apps),
        models=sorted(models),
        prompts=sorted(prompts),
        sha256=hashlib.sha256(body.encode("utf-8")).hexdigest(),
        trigger=trigger or ExportTrigger(),
    )
    (out_dir / MANIFEST).write_text(
        json.dumps({**manifest.to_dict(), "generated_at": time.time()}, indent=2), encoding="utf-8"
    )
    return manifest
