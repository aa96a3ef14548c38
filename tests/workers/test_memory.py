"""glibc's malloc tuning for the workers (processes/memory.py)."""

from __future__ import annotations

import ctypes
import sys

import pytest

from processes import memory


def test_huge_pages_are_added_to_an_environment_without_them():
    assert memory.with_huge_pages({"PATH": "/bin"}) == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    assert memory.uses_huge_pages(memory.with_huge_pages({}))
    assert not memory.uses_huge_pages({})


def test_other_tunables_are_kept_and_an_explicit_choice_wins():
    kept = memory.with_huge_pages({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert kept["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    off = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}
    assert memory.with_huge_pages(off) == off
    assert not memory.uses_huge_pages(off)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim is Linux's")
def test_free_memory_goes_back_to_the_kernel():
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    # Many small blocks (below malloc's mmap threshold): freed, they stay in the heap until trimmed.
    blocks = [libc.malloc(64 * 1024) for _ in range(1600)]
    for block in blocks:
        ctypes.memset(block, 1, 64 * 1024)
    resident = _resident_bytes()
    for block in blocks[:-1]:  # the last one pins the top of the heap, so free() alone cannot shrink it
        libc.free(block)
    assert _resident_bytes() > resident - 50 * 2**20

    assert memory.return_free_memory()

    assert _resident_bytes() < resident - 80 * 2**20
    libc.free(blocks[-1])


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096
