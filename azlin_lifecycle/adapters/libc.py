"""Give freed heap memory back to the system (glibc's ``malloc_trim``).

A sweep allocates and frees a lot (key exchanges, listings); glibc keeps the freed pages
mapped, so a daemon that idles between sweeps would report its busiest moment as its
size. Trimming after a sweep returns them. A no-op (False) on a C library without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def release_free_memory() -> bool:
    """Return free heap pages to the kernel; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
