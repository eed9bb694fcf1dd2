"""The garbage collector set for a server that allocates fast and keeps little.

Nearly everything a request, a provider call or a database trip allocates is freed the moment
its last reference goes (reference counting); the cyclic collector only has to find the rest.
At CPython's default, a young collection every 700 new container objects, it ran every few
payments under load and walked the requests in flight each time: about a tenth of the bot's
CPU in the REST benchmark (docs/performance.md). Every 10,000 it runs a thirtieth as often and
the payments it walks have mostly finished; the garbage it may hold back meanwhile is at most
those 10,000 objects, a few MiB.

What start-up built (modules, classes, functions: some 78,000 objects) lives as long as the
process, so it is frozen out of the collector: an occasional full collection no longer walks it.
"""

from __future__ import annotations

import gc

YOUNG_COLLECTION_EVERY = 10_000  # new container objects between young collections (CPython: 700)


def tune_garbage_collector() -> None:
    """Collect young objects less often, and leave what exists now out of every later collection.
    Called once, when start-up has imported what the bot runs on and before it serves."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, middle, old)
    gc.collect()  # what start-up left as garbage is freed, not frozen
    gc.freeze()
