"""The registry read-through cache: TTL, forever entries, bounds, misses not cached."""

from __future__ import annotations

from paypos.adapters.db.cache import NoCache, TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_cached_value_is_served_until_its_ttl_passes() -> None:
    clock, loads = Clock(), []
    cache = TtlCache(ttl_s=5, clock=clock)
    load = lambda: loads.append(1) or len(loads)  # noqa: E731
    assert cache.get("k", load) == 1
    clock.now += 4.9
    assert cache.get("k", load) == 1
    clock.now += 0.2
    assert cache.get("k", load) == 2


def test_forever_entries_never_expire_but_clear_removes_them() -> None:
    clock = Clock()
    cache = TtlCache(ttl_s=1, clock=clock)
    assert cache.get("id", lambda: 7, forever=True) == 7
    clock.now += 10_000
    assert cache.get("id", lambda: 8, forever=True) == 7
    cache.clear()
    assert cache.get("id", lambda: 8, forever=True) == 8


def test_a_miss_is_not_cached_so_a_row_created_later_is_found() -> None:
    cache = TtlCache()
    assert cache.get("terminal", lambda: None) is None
    assert cache.get("terminal", lambda: "T1") == "T1"


def test_the_cache_is_bounded() -> None:
    cache = TtlCache(entries_max=3)
    for key in range(10):
        cache.get(key, lambda key=key: key)
    assert len(cache) <= 3


def test_no_cache_always_loads() -> None:
    values = iter([1, 2])
    cache = NoCache()
    assert (cache.get("k", lambda: next(values)), cache.get("k", lambda: next(values))) == (1, 2)
