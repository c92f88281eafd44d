"""Which messages a sequence set names, without walking ``1:4294967295`` one by one.

Twisted's ``MessageSet`` iterates every number of a range and needs ``last`` set before
``*`` means anything (machine-notes §3); here each range is cut out of the sorted list of
present ids with two bisections.
"""

from __future__ import annotations

import bisect

from twisted.mail.imap4 import MessageSet


def pick(ids: MessageSet, present: list[int], last: int) -> list[int]:
    """Positions (0-based) in ``present`` (ascending) of the ids the set names; ``*`` is
    ``last``."""
    chosen: set[int] = set()
    for low, high in ids.ranges:
        low = last if low is None else low
        high = last if high is None else high
        if low > high:
            low, high = high, low
        start = bisect.bisect_left(present, low)
        stop = bisect.bisect_right(present, high)
        chosen.update(range(start, stop))
    return sorted(chosen)
