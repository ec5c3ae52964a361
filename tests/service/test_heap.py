"""The heap once a config version serves: what is live kept out of the collector, and what a version
left behind still collected at the next."""

from __future__ import annotations

import gc
import weakref

from engine.service.generation import YOUNG_COLLECTION, settle_heap


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_settling_freezes_the_live_heap_and_frees_what_an_earlier_settle_froze() -> None:
    threshold = gc.get_threshold()
    try:
        left_behind = _Cycle()
        ref = weakref.ref(left_behind)
        settle_heap()
        assert gc.get_freeze_count() > 0 and gc.get_threshold()[0] == YOUNG_COLLECTION
        del left_behind  # frozen while live; a cycle, so only the collector frees it
        assert ref() is not None
        settle_heap()  # the next version: unfreeze, collect, freeze again
        assert ref() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
