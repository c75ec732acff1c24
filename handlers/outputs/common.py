"""What every alert output shares: the severity filter and a one-line text."""

from __future__ import annotations

from secbus_sdk.event import SEVERITIES, SEVERITY_RANK

from .._settings import Settings


def min_severity(s: Settings) -> int:
    return SEVERITY_RANK[s.string("min_severity", "info", choices=SEVERITIES)]


def passes(alert: dict, minimum: int) -> bool:
    return SEVERITY_RANK.get(alert.get("severity"), len(SEVERITIES)) >= minimum


def alert_line(alert: dict) -> str:
    """``[high] authn-brute-force tenant=default,actor.user=alice: 5 failed logins ... (count=5 suppressed=0 id=...)``"""
    return (f"[{alert.get('severity')}] {alert.get('rule')} {alert.get('group') or 'all'}: {alert.get('summary', '')} "
            f"(count={alert.get('count')} suppressed={alert.get('suppressed', 0)} id={alert.get('id')})")
