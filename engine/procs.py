"""Worker processes that die with their parent, kill -9 of the parent included.

Every process cqsignal starts (benchmark runs, evaluation and plan-search pools,
environment workers, SUMO tools run as subprocesses) calls :func:`die_with_parent`
first thing, or is started with :func:`child_kwargs` (``subprocess``). On Linux that
is ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the child the moment its
parent ends, however it ends. A parent that died before the call is caught by
checking, after it, that ``ancestor`` (the process that asked for the worker) still
lives. Elsewhere a watchdog thread polls the parent and exits when it is gone.

A worker forked by a multiprocessing *forkserver* has the forkserver as its parent,
and the forkserver exits only when every process holding its "alive" pipe has ended,
the workers included: the parent-death signal alone would never fire. Such a worker
(``ancestor`` is not its parent) also watches ``ancestor`` through a pidfd (Linux 5.3;
else by polling its pid) and exits the moment it ends; the forkserver then follows.

``PR_SET_PDEATHSIG`` follows the *thread* that forked the child: create workers from
a thread that lives as long as they should (the main thread, or a pool's own thread).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1

_prctl = None
if sys.platform.startswith("linux"):
    try:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
        _prctl = _libc.prctl
        _prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        _prctl.restype = ctypes.c_int
    except (OSError, AttributeError):
        _prctl = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def die_with_parent(ancestor: int | None = None) -> None:
    """Make this process end when its parent does (call first thing in a worker).

    ``ancestor``: the pid of the process that asked for this worker (its parent, or
    the parent of a forkserver); if it is already gone, this process exits at once.
    """
    parent = os.getppid()
    if _prctl is not None:
        if _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            _watchdog(parent)
    else:
        _watchdog(parent)
    if ancestor is not None and ancestor > 0:
        if not _alive(ancestor):
            os._exit(1)
        if ancestor != parent:
            _watch(ancestor)
    if os.getppid() != parent or os.getppid() == 1:
        os._exit(1)  # orphaned before the request took effect


def _watch(pid: int) -> None:
    """Exit when process ``pid`` (not this one's parent) ends."""
    fd = None
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        fd = None

    def watch() -> None:
        if fd is not None:
            import select

            poller = select.poll()
            poller.register(fd, select.POLLIN)  # readable once the process has ended
            while not poller.poll():
                pass
        else:
            while _alive(pid):
                time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="cqsignal-watch-ancestor", daemon=True).start()


def _watchdog(parent: int) -> None:
    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="cqsignal-die-with-parent", daemon=True).start()


def _preexec(parent: int) -> None:  # runs in the child between fork and exec: no locks, no allocation
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def child_kwargs() -> dict:
    """``subprocess`` keyword arguments that make the child die with this process (Linux)."""
    if _prctl is None:
        return {}
    parent = os.getpid()
    return {"preexec_fn": lambda: _preexec(parent)}


__all__ = ["child_kwargs", "die_with_parent"]
