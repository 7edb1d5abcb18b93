"""The pace of the garbage collector's full collections: slower while they find nothing to free.

A server that is taking on thousands of sockets grows its heap with objects
that live as long as their sockets. CPython then runs a full collection after
every ten young ones (and once the heap grew a quarter): each walks every
object, frees almost nothing, and pauses the event loop longer than the
last. Measured on 10,000 sockets connecting (docs/performance.md, item 44):
eleven full collections, up to 0.7 s each, a third of the burst's CPU.

So after a full collection that freed less than ``FRUITLESS_FRACTION`` of
what it walked, the next one waits twice as many young collections (up to
``SLOWEST``); one that freed more sets the pace back to CPython's. Garbage
waits longer only while the collections before found little of it: once
sockets close in numbers, the collection that frees them restores the pace
(over rounds of 5,000 sockets connecting and closing, RSS settled 5–20 MB
above CPython's pace, item 44).
"""

from __future__ import annotations

import gc
from typing import Any

FRUITLESS_FRACTION = 0.05
SLOWEST = 160  # young collections between full ones, at most (CPython's default: 10)


class FullCollectionPacer:
    def __init__(self) -> None:
        self.normal = gc.get_threshold()[2]

    def install(self) -> None:
        if self._on_collection not in gc.callbacks:
            gc.callbacks.append(self._on_collection)

    def uninstall(self) -> None:
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, self.normal)

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop" or info["generation"] != 2:
            return
        # Only after a full collection, which walked all of it: counting is cheap beside that.
        survivors = len(gc.get_objects(generation=2))
        young, middle, pace = gc.get_threshold()
        fruitless = info["collected"] < FRUITLESS_FRACTION * (survivors + info["collected"])
        gc.set_threshold(young, middle, min(pace * 2, SLOWEST) if fruitless else self.normal)
