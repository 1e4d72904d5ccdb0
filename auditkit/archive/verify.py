"""DKIM verification of archived messages, in worker processes when the keys are pinned.

Workers import this package: nothing here (or in the modules `auditkit.archive` imports
at load time) may import DuckDB or Arrow.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, datetime

from auditkit.archive.reading import ArchivedMessage, ParsedMessage, parse_message
from auditkit.dkim import SignatureResult, verify_message
from auditkit.dkim_keys import KeyLookup


def _analyse(
    item: tuple[bytes, str], lookup: KeyLookup
) -> tuple[ParsedMessage, list[SignatureResult]]:
    """Parse one message and check its signatures' cryptography.

    Expiry needs the matched email's delivery time, so it is applied afterwards by
    `apply_expiry`; here the reference time is the far past (nothing counts as expired).
    """
    raw, source_path = item
    parsed = parse_message(raw, source_path)
    return parsed, verify_message(
        raw, lookup, from_domain=parsed.from_domain, reference_time=_EPOCH
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_worker_lookup: KeyLookup | None = None


def _init_worker(lookup: KeyLookup) -> None:
    global _worker_lookup
    _worker_lookup = lookup


def _analyse_chunk(
    items: list[tuple[bytes, str]],
) -> list[tuple[ParsedMessage, list[SignatureResult]]]:
    assert _worker_lookup is not None, "worker started without _init_worker"
    return [_analyse(item, _worker_lookup) for item in items]


def analysed(
    messages: Iterator[ArchivedMessage], lookup: KeyLookup, workers: int
) -> Iterator[tuple[bytes, tuple[ParsedMessage, list[SignatureResult]]]]:
    """(raw, analysis) in archive order; with workers > 1, chunks go to a process pool with
    a bounded number in flight, so a large archive is never held in memory whole."""
    if workers <= 1:
        for m in messages:
            yield m.raw, _analyse((m.raw, m.source_path), lookup)
        return
    chunk_size, max_in_flight = 64, workers * 4
    in_flight: deque[
        tuple[list[bytes], Future[list[tuple[ParsedMessage, list[SignatureResult]]]]]
    ] = deque()
    # spawn, not fork: the parent holds a DuckDB connection and its threads.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(lookup,)
    ) as pool:
        chunk: list[tuple[bytes, str]] = []
        for m in messages:
            chunk.append((m.raw, m.source_path))
            if len(chunk) >= chunk_size:
                in_flight.append(([raw for raw, _ in chunk], pool.submit(_analyse_chunk, chunk)))
                chunk = []
                while len(in_flight) >= max_in_flight:
                    raws, fut = in_flight.popleft()
                    yield from zip(raws, fut.result(), strict=True)
        if chunk:
            in_flight.append(([raw for raw, _ in chunk], pool.submit(_analyse_chunk, chunk)))
        while in_flight:
            raws, fut = in_flight.popleft()
            yield from zip(raws, fut.result(), strict=True)
