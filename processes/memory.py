"""glibc's malloc, tuned for jobs that allocate and free hundreds of megabytes a photo.

A cutout allocates its activations (hundreds of megabytes) and frees them again; glibc hands such blocks back to
the kernel on free and maps them afresh for the next photo, so every photo pays for its memory again, one 4 KiB page
fault at a time, in a process that keeps running (the CLI, a worker that runs jobs in its own process), and more
still in a forked work horse, whose every page is new or copied from its parent. Two remedies, both measured in
docs/production.md ("Memory and huge pages"):

- HUGE_PAGES_TUNABLE: glibc (2.35 and later) asks the kernel for transparent huge pages for what malloc maps, 2 MiB
  at a time. It must be in a process's environment when it starts (GLIBC_TUNABLES): the launcher puts it in its
  children's, the Docker image in every container's; `with_huge_pages` adds it to an environment.
- return_free_memory: the preloaded worker gives what loading and its warm-up freed back to the kernel before it
  forks horses, so a horse fills fresh (huge) pages instead of copying its parent's 4 KiB page by page.

Elsewhere (musl, macOS) the tunable is ignored and return_free_memory does nothing.
"""

from __future__ import annotations

import ctypes
from typing import Mapping

TUNABLES = "GLIBC_TUNABLES"
HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"
_HUGE_PAGES_NAME = HUGE_PAGES_TUNABLE.split("=")[0]


def with_huge_pages(environ: Mapping[str, str]) -> dict[str, str]:
    """Return the environment with malloc's huge pages turned on, unless it sets that tunable already (to 0, say)."""
    env = dict(environ)
    tunables = [item for item in env.get(TUNABLES, "").split(":") if item]
    if not any(item.split("=")[0] == _HUGE_PAGES_NAME for item in tunables):
        env[TUNABLES] = ":".join([*tunables, HUGE_PAGES_TUNABLE])
    return env


def uses_huge_pages(environ: Mapping[str, str]) -> bool:
    """Return True when the environment turns malloc's huge pages on."""
    return HUGE_PAGES_TUNABLE in environ.get(TUNABLES, "").split(":")


def return_free_memory() -> bool:
    """Give the memory malloc holds free back to the kernel (glibc's malloc_trim); False where there is no such
    call."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True
