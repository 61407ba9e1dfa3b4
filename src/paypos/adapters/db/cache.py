"""A small read-through cache for registry rows the host reads on every request.

Terminals, merchants, cards, their sealed keys and ledger account ids change
rarely (keys and ids never). Reading them once per ``limits.registry_cache_ttl_s``
instead of once per request removes about half of a request's statements. A
write through this process's registry clears the cache at once; other host
processes over the same database see a change within the TTL (e.g. a card
blocked by an operator is refused from then on).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import TypeVar

from paypos import limits

T = TypeVar("T")
_MISSING = object()


class TtlCache:
    def __init__(
        self,
        ttl_s: float = limits.registry_cache_ttl_s,
        entries_max: int = limits.registry_cache_entries_max,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s, self._entries_max, self._clock = ttl_s, entries_max, clock
        self._entries: dict[Hashable, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], T], *, forever: bool = False) -> T:
        """The cached value of ``key``, else ``load()`` (not cached when it returns None)."""
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and (entry[0] < 0 or now - entry[0] < self._ttl_s):
            return entry[1]  # type: ignore[return-value]
        value = load()
        if value is not None:
            with self._lock:
                if len(self._entries) >= self._entries_max:
                    self._entries.clear()  # bounded: start over rather than grow
                self._entries[key] = (-1.0 if forever else now, value)
        return value

    def fresh(self, key: Hashable) -> bool:
        """Whether ``key`` holds a value ``get`` would return without loading."""
        entry = self._entries.get(key)
        return entry is not None and (entry[0] < 0 or self._clock() - entry[0] < self._ttl_s)

    def put(self, key: Hashable, value: object, *, forever: bool = False) -> None:
        """Store a value loaded elsewhere (a set-wise load of many keys in one statement)."""
        if value is None:
            return
        with self._lock:
            if len(self._entries) >= self._entries_max:
                self._entries.clear()
            self._entries[key] = (-1.0 if forever else self._clock(), value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class NoCache(TtlCache):
    """Every read goes to the database (the default outside the host)."""

    def get(self, key: Hashable, load: Callable[[], T], *, forever: bool = False) -> T:
        return load()

    def fresh(self, key: Hashable) -> bool:
        return False

    def put(self, key: Hashable, value: object, *, forever: bool = False) -> None:
        return None
