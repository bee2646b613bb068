"""RFC 3339 timestamps in UTC at second precision, as metav1.Time serializes ("2024-05-01T12:00:00Z").

Every create writes two of them (creationTimestamp, the managedFields entry's time); datetime.strftime costs
~15 µs each, a formatted time.gmtime ~3 µs, and the last second's text is remembered, so a busy server mostly
pays a comparison.
"""

from __future__ import annotations

import time

# (whole second, its text): the last second formatted. A tuple replaced in one assignment, so concurrent
# readers (threads) see either the old or the new pair, never a mix.
_last: tuple[int, str] = (-1, "")


def format_seconds(stamp: float) -> str:
    """`stamp` (Unix seconds, fraction dropped) as RFC 3339 UTC; years 0001..9999 as metav1.Time allows."""
    global _last
    second = int(stamp // 1)
    remembered = _last
    if remembered[0] == second:
        return remembered[1]
    t = time.gmtime(second)
    text = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}Z"
    _last = (second, text)
    return text
