"""An instance's records in memory, ordered as its change feed serves them.

The feed is ordered by (updated_at, id), so the store keeps exactly that: a sorted list of keys, in which a
page is one bisect and a slice. A change moves the record's key to its new place (two bisects and two list
moves, microseconds for a few hundred thousand keys). The id listing is a second sorted list, and the
lookups (by person number, by OCR) are dictionaries of ids kept as each version comes and goes.

A late commit is a version with a time in the past that becomes visible only later: it waits in a heap
until its moment, and every read first lets through what is due. Until then the old version is what
readers see, as with a transaction not yet committed.

Each version's JSON is encoded once, the first time it is served, and kept: a page of 500 is then a join.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from synthcity.care import from_microseconds, to_microseconds
from upstreams.wire import format_time

__all__ = ["Clock", "Entry", "Key", "PendingChange", "Store", "Versioned"]

Key = tuple[int, str]


class Versioned(Protocol):
    @property
    def record_id(self) -> str: ...

    @property
    def updated_at(self) -> datetime: ...


R = TypeVar("R", bound=Versioned)


class Clock:
    """The stand-ins' clock, in microseconds: the machine's, never going back, and never earlier than the
    data's own time, so that a change made now always sorts after the generated records."""

    def __init__(self, *, not_before_us: int = 0, source: Callable[[], int] = time.time_ns) -> None:
        self._source = source
        self._offset = max(0, not_before_us - source() // 1000)
        self._last = 0

    def now_us(self) -> int:
        now = max(self._source() // 1000 + self._offset, self._last)
        self._last = now
        return now


@dataclass(slots=True)
class Entry(Generic[R]):
    """A version of a record as the store holds it."""

    record: R
    updated_us: int
    # A malformation this version was stored with (the malformed_record mutation); "" for none.
    malformed: str = ""
    # When the version became or becomes visible, for a late commit; None for one visible when stored.
    visible_us: int | None = None
    encoded: bytes | None = None

    @property
    def key(self) -> Key:
        return (self.updated_us, self.record.record_id)

    @property
    def updated_at(self) -> str:
        return format_time(self.updated_us)


@dataclass(frozen=True, slots=True)
class PendingChange(Generic[R]):
    visible_us: int
    record_id: str
    # None for a deletion.
    entry: Entry[R] | None


class Store(Generic[R]):
    def __init__(
        self,
        *,
        render: Callable[[R, str], dict[str, Any]],
        stamp: Callable[[R, datetime], R],
        indexes: Mapping[str, Callable[[R], str]],
        clock: Clock,
    ) -> None:
        self._render = render
        self._stamp = stamp
        self._index_keys = dict(indexes)
        self.clock = clock
        self._entries: dict[str, Entry[R]] = {}
        self._keys: list[Key] = []
        self._ids: list[str] = []
        self._indexes: dict[str, dict[str, list[str]]] = {name: {} for name in indexes}
        self._pending: list[tuple[int, int, PendingChange[R]]] = []
        self._pending_ids: dict[str, int] = {}
        self._sequence = itertools.count()
        self.last_change_us: int | None = None
        self.changes_applied = 0

    # ---- loading ----

    def load(self, records: Iterable[R]) -> None:
        """Fills an empty store at once: one sort instead of an insertion per record."""
        if self._entries:
            raise RuntimeError("load fills an empty store")
        entries = self._entries
        for record in records:
            entries[record.record_id] = Entry(record, to_microseconds(record.updated_at))
        self._keys = sorted(entry.key for entry in entries.values())
        self._ids = sorted(entries)
        for name, key_of in self._index_keys.items():
            index = self._indexes[name]
            for record_id in self._ids:
                index.setdefault(key_of(entries[record_id].record), []).append(record_id)

    # ---- reading ----

    def __len__(self) -> int:
        self._settle()
        return len(self._entries)

    def __contains__(self, record_id: object) -> bool:
        self._settle()
        return record_id in self._entries

    def get(self, record_id: str) -> Entry[R] | None:
        self._settle()
        return self._entries.get(record_id)

    def find(self, index: str, value: str) -> list[Entry[R]]:
        """The current records whose `index` is `value`, by id."""
        self._settle()
        return [self._entries[record_id] for record_id in self._indexes[index].get(value, ())]

    def changes(self, since: Key | None, limit: int) -> tuple[list[Entry[R]], Key | None]:
        """Up to `limit` records after `since` in (updated_at, id) order, and the key to go on from when
        more follow now."""
        self._settle()
        keys = self._keys
        start = 0 if since is None else bisect.bisect_right(keys, since)
        page = keys[start : start + limit]
        entries = self._entries
        more = start + limit < len(keys)
        return [entries[record_id] for _, record_id in page], (page[-1] if more and page else None)

    def ids(self, after: str | None, limit: int) -> tuple[list[str], str | None]:
        """Up to `limit` ids after `after`, in order, and the id to go on from when more follow."""
        self._settle()
        start = 0 if after is None else bisect.bisect_right(self._ids, after)
        page = self._ids[start : start + limit]
        more = start + limit < len(self._ids)
        return page, (page[-1] if more and page else None)

    def sample(self, rng: random.Random) -> Entry[R] | None:
        """A current record drawn at random, or None when there is none."""
        self._settle()
        if not self._ids:
            return None
        return self._entries[self._ids[int(rng.random() * len(self._ids))]]

    def all_ids(self) -> list[str]:
        self._settle()
        return list(self._ids)

    def entries(self) -> Iterator[Entry[R]]:
        """Every current record, by id."""
        self._settle()
        entries = self._entries
        return (entries[record_id] for record_id in list(self._ids))

    def encoded(self, entry: Entry[R]) -> bytes:
        if entry.encoded is None:
            entry.encoded = json.dumps(
                self.document(entry), ensure_ascii=False, separators=(",", ":")
            ).encode()
        return entry.encoded

    async def warm(self, *, chunk: int = 200) -> int:
        """Encodes every current version not yet encoded, a chunk at a time between other work; how many.

        So that even the first read of each page is a join, at the price of the encoded copies' memory.
        """
        done = 0
        ids = self.all_ids()
        for start in range(0, len(ids), chunk):
            for record_id in ids[start : start + chunk]:
                entry = self._entries.get(record_id)
                if entry is not None and entry.encoded is None:
                    self.encoded(entry)
                    done += 1
            await asyncio.sleep(0)
        return done

    def document(self, entry: Entry[R]) -> dict[str, Any]:
        return self._render(entry.record, entry.updated_at)

    # ---- late commits ----

    def is_pending(self, record_id: str) -> bool:
        self._settle()
        return record_id in self._pending_ids

    @property
    def pending(self) -> int:
        self._settle()
        return len(self._pending)

    def next_visible_us(self) -> int | None:
        return self._pending[0][0] if self._pending else None

    def _settle(self) -> None:
        pending = self._pending
        if not pending:
            return
        now = self.clock.now_us()
        while pending and pending[0][0] <= now:
            _, _, change = heapq.heappop(pending)
            left = self._pending_ids[change.record_id] - 1
            if left:
                self._pending_ids[change.record_id] = left
            else:
                del self._pending_ids[change.record_id]
            if change.entry is None:
                self._remove(change.record_id)
            else:
                self._apply(change.entry)

    # ---- writing ----

    def put(
        self, record: R, *, at_us: int | None = None, visible_in_s: float = 0.0, malformed: str = ""
    ) -> Entry[R]:
        """Stores a new version of `record` stamped `at_us` (now when None), visible now or, for a late
        commit, `visible_in_s` seconds from now."""
        self._settle()
        now = self.clock.now_us()
        stamp_us = now if at_us is None else at_us
        entry = Entry(self._stamp(record, from_microseconds(stamp_us)), stamp_us, malformed)
        if visible_in_s > 0:
            entry.visible_us = now + round(visible_in_s * 1_000_000)
            self._defer(entry.visible_us, record.record_id, entry)
        else:
            self._apply(entry)
        return entry

    def delete(self, record_id: str, *, visible_in_s: float = 0.0) -> Entry[R] | None:
        """Removes a record (no tombstone is kept), now or `visible_in_s` seconds from now; the version
        removed, or None if there was none."""
        self._settle()
        entry = self._entries.get(record_id)
        if entry is None:
            return None
        if visible_in_s > 0:
            self._defer(self.clock.now_us() + round(visible_in_s * 1_000_000), record_id, None)
        else:
            self._remove(record_id)
        return entry

    def _defer(self, visible_us: int, record_id: str, entry: Entry[R] | None) -> None:
        change = PendingChange(visible_us, record_id, entry)
        heapq.heappush(self._pending, (visible_us, next(self._sequence), change))
        self._pending_ids[record_id] = self._pending_ids.get(record_id, 0) + 1

    def _apply(self, entry: Entry[R]) -> None:
        record_id = entry.record.record_id
        old = self._entries.get(record_id)
        if old is None:
            bisect.insort(self._ids, record_id)
        else:
            self._drop_key(old)
            self._unindex(old)
        self._entries[record_id] = entry
        bisect.insort(self._keys, entry.key)
        for name, key_of in self._index_keys.items():
            bisect.insort(self._indexes[name].setdefault(key_of(entry.record), []), record_id)
        self._changed()

    def _remove(self, record_id: str) -> None:
        old = self._entries.pop(record_id, None)
        if old is None:
            return
        self._drop_key(old)
        self._unindex(old)
        del self._ids[bisect.bisect_left(self._ids, record_id)]
        self._changed()

    def _drop_key(self, entry: Entry[R]) -> None:
        del self._keys[bisect.bisect_left(self._keys, entry.key)]

    def _unindex(self, entry: Entry[R]) -> None:
        record_id = entry.record.record_id
        for name, key_of in self._index_keys.items():
            index = self._indexes[name]
            value = key_of(entry.record)
            listed = index[value]
            listed.remove(record_id)
            if not listed:
                del index[value]

    def _changed(self) -> None:
        self.last_change_us = self.clock.now_us()
        self.changes_applied += 1
