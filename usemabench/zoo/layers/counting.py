"""Counting mode: while active, custom kernels (SEMA, selective scan) route through `torch.library`
custom ops that have fake (meta) implementations and registered FLOP formulas.

Why: FLOP counting then works on the `meta` device (huge resolutions cost nothing to count), and the count
of a kernel does not depend on which backend would have run it. Outside counting mode the selected
backend runs directly, so training and timing pay no wrapper cost.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_state = threading.local()


def is_counting() -> bool:
    return getattr(_state, "counting", False)


@contextlib.contextmanager
def counting_mode() -> Iterator[None]:
    previous = is_counting()
    _state.counting = True
    try:
        yield
    finally:
        _state.counting = previous
