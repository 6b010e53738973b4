"""One JSON POST to the contract's alert webhook, shared by SLO alerts and drift.

Delivery is best effort: a webhook that is down or answers an error must never stop
what raised the alert, so a failure comes back as a short description to report, not
as an exception.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["post_alert"]


def post_alert(url: str, payload: Mapping[str, object], *, timeout_s: float = 5.0) -> str | None:
    """POST ``payload`` as JSON to ``url``; returns what went wrong, or ``None`` when delivered."""
    import httpx

    try:
        response = httpx.post(url, json=dict(payload), timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"webhook unreachable: {type(exc).__name__}"
    if response.status_code >= 300:
        return f"webhook answered {response.status_code}"
    return None
