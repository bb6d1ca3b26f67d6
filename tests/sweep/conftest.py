"""The sweep tests' PostgreSQL server: one of its own per test, on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest
from sweeprun import pg_bin


@pytest.fixture
def postgres(tmp_path):
    """A PostgreSQL server of its own on 127.0.0.1 (trust auth), run as a non-root user."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        reason = "PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI must run this test)")
        pytest.skip(reason)
    prefix = []
    base = tmp_path / "pg"
    base.mkdir()
    if os.geteuid() == 0:  # the server refuses to run as root
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
            user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
        for parent in [tmp_path, *tmp_path.parents]:  # let it reach its folder
            os.chmod(parent, os.stat(parent).st_mode | 0o011)
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    subprocess.run(
        prefix + [initdb, "-D", str(data), "-A", "trust", "-U", "bpnet"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        prefix
        + [
            pg_ctl,
            "-D",
            str(data),
            "-w",
            "-l",
            str(base / "log"),
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {base}",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://bpnet@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            prefix + [pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
