"""Counting sources (usage, webhook deliveries) against harvested daily series: which
series each event type counts, and the daily rows (see the package docstring)."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb

from auditkit.findings import Period
from auditkit.multimail_terms import UNSENT_STATUSES
from auditkit.reconciliation.model import (
    EMAIL_SERIES,
    MIN_ACTIVE_DAYS,
    MIN_AGREEMENT,
    QUARANTINED_EMAILS_SQL,
    SERIES,
    WEBHOOKS,
    DayRow,
    EventMapping,
    Reconciliation,
    SourceState,
)
from auditkit.vocabulary import Vocabulary


def source_counts(
    con: duckdb.DuckDBPyConnection, sql: str, state: SourceState
) -> dict[str, dict[date, int]]:
    out: dict[str, dict[date, int]] = {}
    for event_type, day, n in con.execute(sql, [state.first_day, state.last_day]).fetchall():
        out.setdefault(str(event_type), {})[day] = int(n)
    return out


def harvested_series(
    con: duckdb.DuckDBPyConnection, vocabulary: Vocabulary, period: Period
) -> dict[str, dict[date, int]]:
    """Every candidate series over the period (decision entries only with a known meaning)."""
    decisions = vocabulary.known("approved") or vocabulary.known("rejected")
    out = {}
    for name, sql in SERIES.items():
        if "{approved}" in sql and not decisions:
            continue
        query = sql.format(
            approved=vocabulary.predicate("approved"), rejected=vocabulary.predicate("rejected")
        )
        params: dict[str, object] = {"first": period.start, "last": period.end}
        if "$unsent" in query:
            params["unsent"] = list(UNSENT_STATUSES)
        rows = con.execute(
            f"SELECT day, n FROM ({query}) WHERE day >= $first AND day <= $last", params
        ).fetchall()
        out[name] = {d: int(n) for d, n in rows}
    return out


def quarantined_emails(con: duckdb.DuckDBPyConnection) -> tuple[dict[date, set[str]], set[str]]:
    """Quarantined outbound email records never stored since: by day, and those undated."""
    by_day: dict[date, set[str]] = {}
    undated: set[str] = set()
    for record_id, day in con.execute(QUARANTINED_EMAILS_SQL).fetchall():
        if day is None:
            undated.add(record_id)
        else:
            by_day.setdefault(day, set()).add(record_id)
    return by_day, undated


def subscriptions(
    con: duckdb.DuckDBPyConnection, event_types: set[str]
) -> tuple[dict[str, int], dict[str, str]]:
    """Per event type: how many tenant-wide subscriptions receive it (each gets its own
    delivery), and the event types that cannot be reconciled, with why."""
    multiplicity = dict.fromkeys(event_types, 0)
    excluded: dict[str, str] = {}
    for events, mailbox_id in con.execute(
        "SELECT events, mailbox_id FROM multimail_webhooks"
    ).fetchall():
        for event_type in set(events or ()) & event_types:
            if mailbox_id is not None:
                excluded[event_type] = (
                    "a subscription limited to one mailbox receives it; deliveries are not "
                    "counted per mailbox"
                )
            else:
                multiplicity[event_type] += 1
    for event_type, n in multiplicity.items():
        if n == 0 and event_type not in excluded:
            excluded[event_type] = "no current subscription lists this event type"
    return multiplicity, excluded


def reconcile_counts(
    rec: Reconciliation,
    source: str,
    counts: dict[str, dict[date, int]],
    days: list[date],
    series: dict[str, dict[date, int]],
    multiplicity: dict[str, int],
    excluded: dict[str, str],
    quarantined: dict[date, set[str]],
    undated: set[str],
) -> None:
    for event_type in sorted(counts):
        observed = counts[event_type]
        if event_type in excluded:
            _not_reconciled(rec, source, event_type, observed, days, excluded[event_type])
            continue
        k = multiplicity.get(event_type, 1)
        scored = []
        for name, harvested in series.items():
            active = [d for d in days if observed.get(d, 0) or harvested.get(d, 0)]
            agree = sum(observed.get(d, 0) == k * harvested.get(d, 0) for d in active)
            scored.append((agree / len(active) if active else 0.0, agree, len(active), name))
        # Best agreement first; between series that agree equally, SERIES order (the most
        # likely reading first) decides, so the choice never depends on naming.
        rank = {name: i for i, name in enumerate(SERIES)}
        scored.sort(key=lambda s: (-s[0], -s[1], rank[s[3]]))
        if not scored or scored[0][0] < MIN_AGREEMENT or scored[0][2] < MIN_ACTIVE_DAYS:
            best = scored[0] if scored else (0.0, 0, 0, "none")
            note = (
                f"matches no harvested series on {MIN_AGREEMENT:.0%} of its days (closest: "
                f"{best[3]}, {best[1]} of {best[2]} days)"
            )
            _not_reconciled(rec, source, event_type, observed, days, note)
            continue
        ratio, agreeing, active_days, name = scored[0]
        tied = tuple(
            s[3]
            for s in scored[1:]
            if (s[0], s[1]) == (ratio, agreeing) and series[s[3]] != series[name]
        )
        rec.mappings.append(
            EventMapping(source, event_type, name, agreeing, active_days, tied=tied)
        )
        rows = []
        for day in days:
            got = observed.get(day, 0)
            expected = k * series[name].get(day, 0)
            held = k * len(quarantined.get(day, ())) if name in EMAIL_SERIES else 0
            explained = min(max(got - expected, 0), held)
            residual = got - expected - explained
            status, detail = "match", ""
            if got != expected and residual == 0:
                status, detail = "explained", f"{explained} quarantined record(s) of that day"
            elif residual:
                status = "difference"
                if any(got == k * series[t].get(day, 0) for t in tied):
                    status, detail = "review", "an equally good series matches this day"
                elif residual > 0 and name in EMAIL_SERIES and len(undated) >= residual:
                    status, detail = "review", "undated quarantined records could explain it"
            if got or expected or status != "match":
                rows.append(
                    DayRow(day, source, event_type, name, got, expected, explained, status, detail)
                )
        if source == WEBHOOKS:
            rows = _midnight_shifts(rows)
        rec.rows.extend(rows)


def _midnight_shifts(rows: list[DayRow]) -> list[DayRow]:
    """A difference that the next or previous day cancels is for review: a delivery may be
    logged a moment after the event, on the other side of midnight."""
    by_day = {r.day: r for r in rows}
    out = []
    for r in rows:
        diff = r.difference or 0
        neighbours = (by_day.get(r.day + timedelta(days=d)) for d in (-1, 1))
        if r.status == "difference" and any(n and (n.difference or 0) == -diff for n in neighbours):
            r = DayRow(
                r.day,
                r.source,
                r.event_type,
                r.harvested_as,
                r.source_count,
                r.harvested_count,
                r.explained,
                "review",
                "the adjacent day has the opposite difference (a delivery across midnight?)",
            )
        out.append(r)
    return out


def _not_reconciled(
    rec: Reconciliation,
    source: str,
    event_type: str,
    observed: dict[date, int],
    days: list[date],
    note: str,
) -> None:
    rec.mappings.append(EventMapping(source, event_type, None, 0, 0, note))
    for day in days:
        if observed.get(day):
            rec.rows.append(
                DayRow(day, source, event_type, "", observed[day], None, 0, "not_reconciled")
            )
