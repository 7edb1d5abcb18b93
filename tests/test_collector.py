"""The pace of full collections: slower while they free nothing, CPython's again once they do."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from intentd.collector import SLOWEST, FullCollectionPacer


@pytest.fixture
def pacer() -> Iterator[FullCollectionPacer]:
    # Live objects, as held sockets are: stray garbage made during a test is far from a twentieth of them.
    held = [{} for _ in range(50_000)]
    gc.collect()  # earlier tests' garbage would make the first collection below a fruitful one
    pacer = FullCollectionPacer()
    pacer.install()
    yield pacer
    pacer.uninstall()
    del held


def _cycles(count: int) -> list[list[object]]:
    """``count`` lists that, once let go, only the collector can free."""
    cycles: list[list[object]] = []
    for _ in range(count):
        cycle: list[object] = []
        cycle.append(cycle)
        cycles.append(cycle)
    return cycles


def test_fruitless_full_collections_double_the_wait_up_to_a_ceiling(pacer: FullCollectionPacer) -> None:
    paces = []
    for _ in range(6):
        gc.collect()
        paces.append(gc.get_threshold()[2])
    normal = pacer.normal
    assert paces == [min(normal * 2 ** n, SLOWEST) for n in range(1, 7)]
    assert paces[-1] == SLOWEST


def test_a_full_collection_that_frees_garbage_restores_the_normal_pace(pacer: FullCollectionPacer) -> None:
    closed_sockets = _cycles(len(gc.get_objects()) // 5)  # a sixth of the heap, soon garbage
    gc.collect()
    gc.collect()
    assert gc.get_threshold()[2] == 4 * pacer.normal  # they lived: nothing freed
    del closed_sockets
    gc.collect()
    assert gc.get_threshold()[2] == pacer.normal


def test_young_collections_leave_the_pace_alone(pacer: FullCollectionPacer) -> None:
    gc.collect()
    slowed = gc.get_threshold()
    garbage = _cycles(10_000)
    del garbage
    gc.collect(0)
    gc.collect(1)
    assert gc.get_threshold() == slowed


def test_uninstalled_the_collector_is_as_it_was() -> None:
    before = gc.get_threshold()
    pacer = FullCollectionPacer()
    pacer.install()
    pacer.install()  # once is enough
    gc.collect()
    assert gc.callbacks.count(pacer._on_collection) == 1
    pacer.uninstall()
    assert gc.get_threshold() == before
    assert pacer._on_collection not in gc.callbacks
