"""How a sweep's processes take an interruption: Ctrl-C (SIGINT), ``kill`` (SIGTERM) or a
closed terminal (SIGHUP) alike.

The first of these signals becomes an :class:`Interrupted` (a KeyboardInterrupt) in the
process's main thread, and every later one is ignored, so that a worker can put its trial back
and a sweep can stop its workers without a second Ctrl-C cutting that short. A few short steps
that must not be cut in two (claiming a trial, making a study and writing what it belongs to)
run with the signals ``deferred``: one that arrives meanwhile takes effect at the step's end.
Signal handlers belong to a process's main thread; elsewhere these do nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The first interrupting signal (``signum``) a process got."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def exit_status(error):
    """The exit status of a command stopped by ``error``: 128 + the signal's number (130 for
    Ctrl-C, 143 for SIGTERM, 129 for SIGHUP)."""
    return 128 + getattr(error, "signum", int(signal.SIGINT))


def _main_thread():
    return threading.current_thread() is threading.main_thread()


_received = []  # the signal numbers ``_first`` has turned into an Interrupted


def _first(signum, _frame):
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    _received.append(signum)
    raise Interrupted(signum)


def received():
    """Whether this process was interrupted: an Interrupted that a library turned into another
    error on its way up (as pydantic does inside an import) still counts."""
    return bool(_received)


def install():
    """From now on the first of SIGNALS raises Interrupted and later ones are ignored;
    returns the handlers it replaced (for :func:`restore`)."""
    if not _main_thread():
        return {}
    return {s: signal.signal(s, _first) for s in SIGNALS}


def restore(previous):
    for s, handler in previous.items():
        signal.signal(s, handler)


def ignore():
    """Ignore SIGNALS from now on (a process that is stopping already)."""
    if _main_thread():
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)


@contextlib.contextmanager
def deferred():
    """Run the block with SIGNALS held back: one that arrives meanwhile is delivered again to
    the handler it would have reached, once the block is over."""
    if not _main_thread():
        yield
        return
    got = []
    previous = {s: signal.signal(s, lambda signum, _frame: got.append(signum)) for s in SIGNALS}
    try:
        yield
    finally:
        restore(previous)
        if got and previous[got[0]] not in (signal.SIG_IGN, None):
            signal.raise_signal(got[0])
