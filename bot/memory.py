"""The garbage collector set for a server that allocates fast and keeps little.

Nearly everything a request, a provider call or a database trip allocates is freed the moment
its last reference goes (reference counting); the cyclic collector only has to find the rest.
At CPython's default, a young collection every 700 new container objects, it ran every few
payments under load and walked the requests in flight each time: about a tenth of the bot's
CPU in the REST benchmark (docs/performance.md). Every 10,000 it runs a thirtieth as often and
the payments it walks have mostly finished.

The price is garbage held longer: up to 10,000 new container objects' worth of cycles, and
full collections a fourteenth as often. The threshold counts objects, not bytes, so what that
holds depends on what the cycles hold: little for a payment's work (its replies are small);
for the owner's month chart and workbook made 12 times over, a peak of 161 MiB against 132 at
CPython's default, had the chart and the workbook not called `free_cycles` when done (with
it: 120 MiB). A loop of large values caught in cycles (an exception's frames over a big body)
would hold more, in proportion.

What start-up built (modules, classes, functions: some 78,000 objects) lives as long as the
process, so it is frozen out of the collector: an occasional full collection no longer walks
it. Libraries imported later, when first used (the chart's, the web server), are not frozen.
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


def free_cycles() -> None:
    """Collect the young and middle generations now. For work that leaves many cycles behind at
    once (a chart's figure and canvas refer to each other; so do a workbook's parts), so they are
    freed when it ends rather than after 10,000 more objects: 0-4 ms after a month's chart and
    workbook, whose peak memory over 12 of each it keeps at 120 MiB instead of 161."""
    gc.collect(1)
