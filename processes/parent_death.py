"""Children that die with their parent: nothing the launcher or a worker started outlives it, even a SIGKILL.

A supervisor killed outright (SIGKILL, the OOM killer) runs no clean-up, so its children would run on as orphans:
an embedded redis-server holding its port and files, a work horse finishing a job that a new worker has meanwhile
taken over. Linux's parent-death signal (prctl PR_SET_PDEATHSIG) has the kernel kill them instead. Elsewhere
(macOS) die_with_parent does nothing and returns False.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, signum: int = signal.SIGKILL) -> bool:
    """Have the kernel send signum to this process when its parent dies; False where it cannot.

    parent_pid: the parent this process was started by; if it died before the call, this process exits at once
    (the kernel would never send the signal: the new parent is init).
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        return False
    if os.getppid() != parent_pid:
        os._exit(1)
    return True


def child_of_this_process() -> Callable[[], None]:
    """Return a Popen preexec_fn that makes the child die with this process (call it in the parent)."""
    parent = os.getpid()

    def preexec() -> None:
        die_with_parent(parent)
    return preexec
