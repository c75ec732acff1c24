"""The alerting engine: rules over events and traces, windows, suppression.

Pure logic, no I/O: events and closed traces go in, alerts come out through
the ``publish`` callable, and :meth:`Engine.changes` / :meth:`Engine.restore`
carry the state across restarts incrementally: only the groups touched since
the last save are written (``plugin.py`` and ``ledger.py`` store them), so a
save costs in proportion to what changed, not to the whole state.

Time is *event time*: windows and suppression are measured with the events'
``ts`` (a trace's ``last_ts``), never the wall clock, so a replay of the same
events gives the same alerts and tests need no sleeping.

Triggers.  ``match``: every matching event.  ``threshold``: the N-th matching
event of a group within ``window``; the events that made a trigger are
consumed, so a threshold never fires twice for the same events.
``distinct``: the N-th distinct value of the ``distinct`` field in a group
within ``window`` (then consumed).  ``sequence``: the last step of ordered
steps, within ``window`` of the first step's first event.  ``trace``: a
closed trace whose fields pass ``trace_where`` and whose events satisfy every
``require`` table (by different platforms with ``distinct_platforms``).

Suppression (why: alert floods and duplicate alerts are the first complaint
about security alerting).  The first trigger of a rule and group publishes
an alert and opens a suppression window of ``suppress`` seconds.  Until it
ends, every further matching event of that rule and group is *suppressed*:
counted, and its id, trace and seq kept in the suppression ledger under the
id of the alert that stood for it, but not published.  Escalation always
goes through: a trigger of higher severity (a match on a more severe event,
or an ``escalate`` step reached by the alert's count plus the suppressed
events) publishes a new alert that names the one it escalates and takes
over the window.  The next alert after a window carries ``suppressed`` (how
many events that window swallowed) and ``previous`` (its alert id).

Idempotence: delivery is at least once, so events with a ``seq`` not above
the last one processed (and traces likewise) are skipped.

Bounds: each rule keeps at most ``max_groups`` groups (least recently active
evicted first, counted in ``evicted_groups``); window entries are bounded by
the rule's threshold; the event ids listed in an alert or kept per
suppression window are capped at ``max_ids``.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict, deque
from typing import Any, Callable

from secbus_sdk.event import SEVERITY_RANK, new_event_id

from .conditions import MISSING, get_field
from .rules import Rule

Publish = Callable[[dict], None]
Ref = tuple  # (ts, seq, event_id, trace_id)


class _Group:
    """Per rule and group: window entries, sequence progress, suppression."""

    __slots__ = ("entries", "values", "step", "step_count", "alert", "last_ts")

    def __init__(self) -> None:
        self.entries: deque[Ref] = deque()       # threshold / sequence refs
        self.values: dict[Any, Ref] = {}          # distinct: value -> latest ref
        self.step = 0
        self.step_count = 0
        self.alert: dict | None = None            # open suppression window
        self.last_ts = 0

    def to_json(self) -> dict:
        return {"entries": [list(r) for r in self.entries],
                "values": [[v, list(r)] for v, r in self.values.items()],
                "step": self.step, "step_count": self.step_count, "alert": self.alert, "last_ts": self.last_ts}

    @classmethod
    def from_json(cls, data: dict) -> "_Group":
        g = cls()
        g.entries = deque(tuple(r) for r in data["entries"])
        g.values = {v: tuple(r) for v, r in data["values"]}
        g.step, g.step_count, g.alert, g.last_ts = data["step"], data["step_count"], data["alert"], data["last_ts"]
        return g


class Engine:
    def __init__(self, rules: list[Rule], publish: Publish, *, max_groups: int = 10_000, max_ids: int = 100,
                 on_suppressed: Callable[[str, Ref], None] | None = None):
        self.rules = rules
        self.publish = publish
        self.on_suppressed = on_suppressed
        self.max_groups = max_groups
        self.max_ids = max_ids
        self.groups: dict[str, OrderedDict[str, _Group]] = {r.name: OrderedDict() for r in rules}
        self.last_event_seq = -1
        self.last_trace_seq = -1
        self.alerts_published = 0
        self.suppressed_total = 0
        self.evicted_groups = 0
        self.skipped_redelivered = 0
        self._event_rules = [r for r in rules if r.kind != "trace"]
        self._trace_rules = [r for r in rules if r.kind == "trace"]
        self._by_type: dict[Any, list[Rule]] = {}
        self._dirty: set[tuple[str, str]] = set()     # (rule, group key) touched since the last save
        self._removed: set[tuple[str, str]] = set()   # dropped since the last save

    # --------------------------------------------------------------- inputs
    def process_events(self, events: list[dict]) -> int:
        """Feed a batch in log order; return the number of alerts published."""
        before = self.alerts_published
        for event in events:
            seq = event.get("seq", -1)
            if seq <= self.last_event_seq:
                self.skipped_redelivered += 1
                continue
            for rule in self._candidates(event.get("type")):
                if rule.where(event):
                    self._on_match(rule, event)
            self.last_event_seq = seq
        return self.alerts_published - before

    def process_trace(self, trace: dict, events: Callable[[], list[dict]] | None = None) -> int:
        """Feed one closed trace; return the number of alerts published.  Without ``events``
        in ``trace``, ``events()`` gives them, called only once a rule's ``trace_where`` holds
        (a stored trace's events are decoded only if a rule reads them)."""
        before = self.alerts_published
        seq = trace.get("seq", -1)
        if seq <= self.last_trace_seq:
            self.skipped_redelivered += 1
            return 0
        for rule in self._trace_rules:
            matched = self._trace_matches(rule, trace, events)
            if matched is not None:
                first = matched[0] if matched else {}
                key = self._group_key(rule, trace, first)
                group = self._group(rule, key)
                refs = [_ref(e) for e in matched]
                ts = trace.get("last_ts") or max((r[0] for r in refs), default=0)
                self._trigger(rule, key, group, refs, rule.severity, ts, len(refs))
        self.last_trace_seq = seq
        return self.alerts_published - before

    # ------------------------------------------------------------- matching
    def _candidates(self, event_type: Any) -> list[Rule]:
        """Event rules whose ``type`` condition this type passes (cached per type:
        most rules name a type, so most are never evaluated for most events)."""
        rules = self._by_type.get(event_type)
        if rules is None:
            rules = [r for r in self._event_rules if r.type_test is None or r.type_test(event_type)]
            if len(self._by_type) < 10_000:
                self._by_type[event_type] = rules
        return rules

    def _group_key(self, rule: Rule, obj: dict, fallback: dict | None = None) -> str:
        parts = []
        for path in rule.group_by:
            value = get_field(obj, path)
            if value is MISSING and fallback is not None:
                value = get_field(fallback, path)
            parts.append(f"{path}={group_text(value)}")
        return ",".join(parts)

    def _group(self, rule: Rule, key: str) -> _Group:
        groups = self.groups[rule.name]
        group = groups.get(key)
        if group is None:
            if len(groups) >= self.max_groups:
                old, _ = groups.popitem(last=False)
                self.evicted_groups += 1
                self._removed.add((rule.name, old))
                self._dirty.discard((rule.name, old))
            group = groups[key] = _Group()
        else:
            groups.move_to_end(key)
        self._dirty.add((rule.name, key))
        return group

    def _on_match(self, rule: Rule, event: dict) -> None:
        key = self._group_key(rule, event)
        group = self._group(rule, key)
        ts = event.get("ts", 0)
        ref = _ref(event)
        group.last_ts = max(group.last_ts, ts)
        # Inside an open suppression window every matching event is suppressed
        # (unless it escalates); no new window counting starts meanwhile.
        if group.alert is not None and ts < group.alert["until"]:
            severity = self._event_severity(rule, event) if rule.kind == "match" else rule.severity
            self._suppress_or_escalate(rule, key, group, ref, severity, ts)
            return
        if rule.kind == "match":
            self._trigger(rule, key, group, [ref], self._event_severity(rule, event), ts, 1)
        elif rule.kind == "threshold":
            if not group.entries or group.entries[-1][1] != ref[1]:  # not again after a failed publish
                group.entries.append(ref)
            _evict(group.entries, ts - rule.window_ns)
            if len(group.entries) >= rule.threshold:
                refs = list(group.entries)
                self._trigger(rule, key, group, refs, rule.severity, ts, len(refs))
                group.entries.clear()  # consumed: a threshold never fires twice for the same events
        elif rule.kind == "distinct":
            value = get_field(event, rule.distinct)
            if value is MISSING:
                return
            value = str(value)
            horizon = ts - rule.window_ns
            for old in [v for v, r in group.values.items() if r[0] <= horizon]:
                del group.values[old]
            group.values.pop(value, None)
            group.values[value] = ref
            if len(group.values) >= rule.threshold:
                refs = list(group.values.values())
                self._trigger(rule, key, group, refs, rule.severity, ts, len(refs))
                group.values.clear()
        elif rule.kind == "sequence":
            self._sequence(rule, key, group, event, ref, ts)

    def _sequence(self, rule: Rule, key: str, group: _Group, event: dict, ref: Ref, ts: int) -> None:
        if group.entries and ts - group.entries[0][0] > rule.window_ns:
            group.entries.clear()
            group.step = group.step_count = 0
        steps = rule.steps
        current = steps[group.step]
        satisfied = group.step_count >= current.count
        nxt = steps[group.step + 1] if group.step + 1 < len(steps) else None
        if satisfied and nxt is not None and nxt.where(event):
            group.step += 1
            group.step_count = 1
        elif current.where(event):
            group.step_count += 1
        elif any(s.where(event) for s in steps[group.step + 1:]) or steps[0].where(event):
            # A later step before its turn breaks the sequence; it may start a new one.
            group.entries.clear()
            group.step = group.step_count = 0
            if steps[0].where(event):
                group.step_count = 1
            else:
                return
        else:
            return
        if not group.entries or group.entries[-1][1] != ref[1]:
            group.entries.append(ref)
        while len(group.entries) > self.max_ids:
            group.entries.popleft()
        if group.step == len(steps) - 1 and group.step_count >= steps[-1].count:
            refs = list(group.entries)
            self._trigger(rule, key, group, refs, rule.severity, ts, len(refs))
            group.entries.clear()
            group.step = group.step_count = 0

    def _trace_matches(self, rule: Rule, trace: dict, load: Callable[[], list[dict]] | None) -> list[dict] | None:
        if rule.trace_where is not None and not rule.trace_where(trace):
            return None
        if load is not None and "events" not in trace:
            trace["events"] = load()
        events = [e for e in trace.get("events", []) if rule.where(e)]
        if not rule.require:
            return events if events or not trace.get("events") else None
        candidates = [[e for e in events if req(e)] for req in rule.require]
        if any(not c for c in candidates):
            return None
        if not rule.distinct_platforms:
            return [c[0] for c in candidates]
        for combo in itertools.islice(itertools.product(*candidates), 10_000):
            platforms = [e.get("source", {}).get("platform") for e in combo]
            if len(set(platforms)) == len(platforms):
                return list(combo)
        return None

    @staticmethod
    def _event_severity(rule: Rule, event: dict) -> str:
        if rule.severity == "event":
            return event.get("severity") or "medium"
        return rule.severity

    # ---------------------------------------------------------- suppression
    def _escalated_severity(self, rule: Rule, base: str, total: int) -> str:
        severity = base
        for step in rule.escalate:
            if total >= step.count and SEVERITY_RANK[step.severity] > SEVERITY_RANK[severity]:
                severity = step.severity
        return severity

    def _suppress_or_escalate(self, rule: Rule, key: str, group: _Group, ref: Ref, severity: str, ts: int) -> None:
        open_alert = group.alert
        open_alert["suppressed"] += 1
        open_alert["last_ts"] = max(open_alert["last_ts"], ts)
        total = open_alert["count"] + open_alert["suppressed"]
        severity = self._escalated_severity(rule, severity, total)
        if SEVERITY_RANK[severity] > SEVERITY_RANK[open_alert["severity"]]:
            open_alert["suppressed"] -= 1
            self._publish(rule, key, group, [ref], severity, ts, total, escalates=open_alert)
            return
        self.suppressed_total += 1
        if self.on_suppressed is not None:
            self.on_suppressed(open_alert["id"], ref)

    def _trigger(self, rule: Rule, key: str, group: _Group, refs: list[Ref], severity: str, ts: int, count: int) -> None:
        open_alert = group.alert
        if open_alert is not None and ts < open_alert["until"]:
            # Only trace rules get here with a window open (event rules divert earlier).
            for ref in refs:
                self._suppress_or_escalate(rule, key, group, ref, severity, ts)
            return
        severity = self._escalated_severity(rule, severity, count)
        self._publish(rule, key, group, refs, severity, ts, count, previous=open_alert)

    def _publish(self, rule: Rule, key: str, group: _Group, refs: list[Ref], severity: str, ts: int, count: int,
                 previous: dict | None = None, escalates: dict | None = None) -> None:
        refs = sorted(refs)
        shown = refs[-self.max_ids:]
        first_ts = min((r[0] for r in refs), default=ts)
        alert = {
            "id": new_event_id(),
            "rule": rule.name,
            "kind": rule.kind,
            "severity": severity,
            "group": key,
            "count": count,
            "suppressed": (escalates or previous or {}).get("suppressed", 0),
            "first_ts": first_ts,
            "last_ts": max((r[0] for r in refs), default=ts),
            "event_ids": [r[2] for r in shown if r[2]],
            "trace_ids": sorted({r[3] for r in shown if r[3]}),
            "seqs": [r[1] for r in shown],
            "suppress_until": ts + rule.suppress_ns,
            "time_ns": time.time_ns(),
        }
        if previous:
            alert["previous"] = previous["id"]
        if escalates:
            alert["escalates"] = escalates["id"]
            alert["first_ts"] = min(alert["first_ts"], escalates["first_ts"])
        alert["summary"] = self._summary(rule, alert)
        self.publish(alert)  # raises: nothing below happens, the batch is retried
        self.alerts_published += 1
        group.alert = {"id": alert["id"], "severity": severity, "until": ts + rule.suppress_ns, "count": count,
                       "suppressed": 0, "first_ts": alert["first_ts"], "last_ts": alert["last_ts"]} if rule.suppress_ns else None

    @staticmethod
    def _summary(rule: Rule, alert: dict) -> str:
        template = rule.summary or "{rule}: {count} matching event(s) for {group}"
        values = {k: alert[k] for k in ("rule", "severity", "count", "suppressed")}
        values["group"] = alert["group"] or "all"
        values["window"] = f"{rule.window_ns / 1e9:g}s"
        try:
            return template.format_map(values)
        except (KeyError, ValueError, IndexError):
            return f"{rule.name}: {alert['count']} matching event(s) for {values['group']}"

    # ---------------------------------------------------------------- state
    def sweep(self, now_ts: int) -> None:
        """Drop groups with nothing left to remember as of event time ``now_ts``."""
        for rule in self.rules:
            groups = self.groups[rule.name]
            horizon = now_ts - max(rule.window_ns, rule.suppress_ns)
            for key in [k for k, g in groups.items()
                        if g.last_ts <= horizon and (g.alert is None or g.alert["until"] <= now_ts)]:
                del groups[key]  # its window entries are all older than the window
                self._removed.add((rule.name, key))
                self._dirty.discard((rule.name, key))

    def header(self) -> dict:
        return {"last_event_seq": self.last_event_seq, "last_trace_seq": self.last_trace_seq}

    def changes(self) -> tuple[dict, list[tuple[str, str, dict]], list[tuple[str, str]]]:
        """What changed since the last call: the header, the touched groups
        (rule, key, state) in least-recently-active-first order, and the
        dropped ones; then start counting afresh."""
        touched = []
        for name, key in self._dirty:
            group = self.groups.get(name, {}).get(key)
            if group is not None:
                touched.append((group.last_ts, name, key, group))
        touched.sort(key=lambda item: item[0])  # event time approximates recency for the LRU order
        upserts = [(name, key, group.to_json()) for _, name, key, group in touched]
        removed = list(self._removed)
        self._dirty.clear()
        self._removed.clear()
        return self.header(), upserts, removed

    def snapshot(self) -> dict:
        """The whole state (for tests and tools; saving uses :meth:`changes`)."""
        return {**self.header(), "groups": {name: [[k, g.to_json()] for k, g in groups.items()]
                                            for name, groups in self.groups.items()}}

    def restore(self, data: dict) -> None:
        """Load a saved state: the header keys and ``groups`` as {rule: [[key, state], ...]}
        in least-recently-active-first order.  Groups of rules that no longer exist are dropped."""
        self.last_event_seq = data.get("last_event_seq", -1)
        self.last_trace_seq = data.get("last_trace_seq", -1)
        for name, items in data.get("groups", {}).items():
            if name in self.groups:
                self.groups[name] = OrderedDict((k, _Group.from_json(g)) for k, g in items)
            else:
                self._removed.update((name, k) for k, _ in items)


def group_text(value: Any) -> str:
    """A grouped field's value as it reads in an alert's ``group``: as written in the event's
    JSON for booleans and null (``true``, not Python's ``True``), so ``secbus tail --attr
    x=true`` finds the alerts grouped by it; empty when the field is missing."""
    if value is MISSING:
        return ""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)


def _ref(event: dict) -> Ref:
    return (event.get("ts", 0), event.get("seq", -1), event.get("id", ""), event.get("trace_id", ""))


def _evict(entries: deque, horizon: int) -> None:
    while entries and entries[0][0] <= horizon:
        entries.popleft()
