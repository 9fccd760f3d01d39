"""Keep freed memory in the process, so CPU inference does not page-fault its activations in on every pass.

glibc's malloc serves every block above its mmap threshold (32 MiB at most) with a fresh mmap and gives it back to
the kernel on free. A full-width ResNet18 evaluated at batch 500 in fp32 allocates 131 MB activations, so each
forward pass maps, zero-fills (a page fault per 4 KiB) and unmaps hundreds of megabytes: on the 2-core Xeon
about a third of the CPU time went to the kernel, and keeping freed blocks for reuse made evaluation 1.3-1.8x
faster (`python benchmarks/allocator.py`). Training at batch 128 allocates smaller blocks, which glibc mostly
reuses already, so it gains little.

The entry points apply it (the CLI's `main`, `reproduce`, the notebooks' first cell, the latency timing
processes); importing the package never does, so a library user's process keeps its malloc unless they call
`keep_freed_memory()` themselves. Linux with glibc only; `COMPRESS_MALLOC=system` leaves malloc as it is.
"""
from __future__ import annotations

import ctypes
import os
import sys
import warnings

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_MAX = -4
CHOICES = ("keep", "system")
_applied = False  # whether keep_freed_memory changed this process's malloc (it never changes back)


def kept() -> bool:
    """Whether this process keeps freed memory (`keep_freed_memory` ran here and applied it)."""
    return _applied


def keep_freed_memory() -> bool:
    """Serve large blocks from the heap and never shrink it, so freed memory is reused instead of re-faulted.

    Returns whether this process now keeps freed memory: not off Linux, not without glibc (musl has no mallopt), not with
    `COMPRESS_MALLOC=system`. Memory the process once held stays its own until it exits; on this project's
    workloads that is its peak (a few GB), which it needs again on the next pass anyway. Call it early, before
    the big tensors exist (blocks mapped before it keep glibc's rules); calling it again changes nothing.
    """
    global _applied
    choice = os.environ.get("COMPRESS_MALLOC", "keep").strip().lower() or "keep"
    if choice not in CHOICES:
        warnings.warn(f"COMPRESS_MALLOC={choice!r} is not one of {', '.join(CHOICES)}; using 'keep'", stacklevel=2)
        choice = "keep"
    if choice == "system" or not sys.platform.startswith("linux"):
        return _applied
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return _applied
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mmap off: blocks come from the heap (glibc still maps when the heap cannot grow); a trim threshold of 2 GiB
    # keeps the heap's free top instead of handing it back after every large free
    _applied = (bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))) or _applied
    return _applied

