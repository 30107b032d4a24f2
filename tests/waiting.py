"""Bounded waits on a condition for the tests (never a timed assertion): importable from every test
module, since pytest puts tests/ (the root conftest's folder) on sys.path."""
from __future__ import annotations

import time
from typing import Any, Callable


def wait_for(probe: Callable[[], Any], timeout_s: float, what: str = "condition", poll_s: float = 0.2) -> Any:
    """Poll `probe` until it returns something truthy and return that; AssertionError after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(poll_s)  # polling for an event, not a timed assertion
    raise AssertionError(f"{what}: not reached within {timeout_s} s")
