"""Run a command as a child and measure its own peak memory.

A forked child starts with its parent's resident pages, and Linux keeps that figure across
exec, so wait4's ``ru_maxrss`` of a child forked straight from a large test process says more
about the parent than the child. Here a small launcher interpreter forks the command instead,
under an optional address-space limit (RLIMIT_AS), and reports the child's ``ru_maxrss``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

LAUNCHER = r"""
import os, resource, sys
out, limit, *cmd = sys.argv[1:]
pid = os.fork()
if pid == 0:
    if int(limit):
        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(out, "w") as fh:
    fh.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


@dataclass
class Result:
    code: int
    out: str
    err: str
    peak_mb: float  # the command's own peak resident memory (the launcher's ~10 MB included)
    seconds: float


def run_measured(cmd, cwd=None, env=None, timeout=120, as_limit=None, stdin=None):
    """Run ``cmd`` (a list); its exit status, output, peak resident MB and wall time. The
    whole process group is killed after ``timeout`` seconds."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss, open(os.devnull, "rb") as null:
        started = time.monotonic()
        p = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                LAUNCHER,
                rss.name,
                str(as_limit or 0),
                *map(str, cmd),
            ],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=stdin or null,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
        seconds = time.monotonic() - started
        text = rss.read().strip()
    return Result(
        p.returncode,
        out.decode(),
        err.decode(),
        int(text) / 1024 if text else float("nan"),
        seconds,
    )
