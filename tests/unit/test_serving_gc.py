"""A serving process freezes its start-up objects out of the cyclic collector and collects
the young generation less often (`bootstrap.settle_for_serving`, docs/performance.md)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from paypos import limits
from paypos.bootstrap import settle_for_serving


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_start_up_objects_are_frozen_and_the_young_generation_waits_longer(restored_gc: None) -> None:
    middle, oldest = gc.get_threshold()[1:]
    settle_for_serving()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (limits.gc_gen0_threshold, middle, oldest)
    assert limits.gc_gen0_threshold > 700  # CPython's default, which cost ~5 % of a request


def test_a_cycle_made_after_start_up_is_still_collected(restored_gc: None) -> None:
    settle_for_serving()
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None
