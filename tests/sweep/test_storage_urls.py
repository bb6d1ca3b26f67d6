"""`--storage` that cannot work is refused up front, in one line: an in-memory SQLite database,
an unknown scheme, a folder (exit status 2, nothing written); a missing driver, named per
scheme (exit status 1); a server that accepts connections and never answers, for PostgreSQL,
MySQL and Redis (exit status 1, in seconds, not never). Passwords are never shown. Real
`bpnet sweep` processes and real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import threading

import pytest
from sweeprun import sweep_file  # skips this module when Optuna is missing


def sweep(bpnet_exe, tmp_path, data_dir, *args, env=None, timeout=120):
    path = sweep_file(tmp_path, n=2, epochs=1)
    return subprocess.run(
        [bpnet_exe, "sweep", str(path), *args, "--data-dir", str(data_dir), "--offline"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def one_line(r, status):
    assert r.returncode == status, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.mark.parametrize(
    "url",
    ["sqlite:///", "sqlite://", "sqlite:///:memory:", "sqlite:///file:db?mode=memory&uri=true"],
)
def test_an_in_memory_sqlite_is_refused(bpnet_exe, tmp_path, mnist_session_dir, url):
    line = one_line(sweep(bpnet_exe, tmp_path, mnist_session_dir, "--storage", url), 2)
    assert line == (
        f"bpnet: error: --storage {url}: an in-memory SQLite database is private to each "
        f"process, so the sweep's workers would not share it; give a file: sqlite:///PATH (or "
        f"a journal file)"
    )
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize(
    "url,expected",
    [
        ("foo://host/db", "unknown storage scheme foo:// (expected postgresql://, mysql://"),
        ("postgresql://h:notaport/db", "not a storage URL"),
        (".", "is a folder, expected a journal file (or a storage URL)"),
    ],
)
def test_a_storage_that_is_no_storage_is_refused(
    bpnet_exe, tmp_path, mnist_session_dir, url, expected
):
    line = one_line(sweep(bpnet_exe, tmp_path, mnist_session_dir, "--storage", url), 2)
    assert line.startswith(f"bpnet: error: --storage {url}: ") and expected in line, line
    assert not (tmp_path / "sweeps").exists()


def test_a_journal_under_a_file_is_refused(bpnet_exe, tmp_path, mnist_session_dir):
    (tmp_path / "afile").write_text("")
    url = str(tmp_path / "afile" / "journal.log")
    line = one_line(sweep(bpnet_exe, tmp_path, mnist_session_dir, "--storage", url), 2)
    assert line.startswith(f"bpnet: error: --storage {url}: cannot make its folder"), line


@pytest.mark.parametrize(
    "url,hidden,expected",
    [
        ("postgresql://u@h/db", "psycopg", "needs the database driver psycopg, which is not "
         "installed: pip install 'bpnet[postgres]'"),
        ("mysql+pymysql://u@h/db", "pymysql", "needs the database driver pymysql, which is "
         "not installed: pip install 'bpnet[mysql]'"),
        ("mysql://u@h/db", "MySQLdb", "needs the database driver mysqldb, which is not "
         "installed: pip install mysqlclient"),
        ("redis://h:6379", "redis", "a journal on Redis needs the redis package, which is not "
         "installed: pip install 'bpnet[redis]'"),
    ],
)  # fmt: skip
def test_a_missing_driver_is_named_with_its_install(
    bpnet_exe, tmp_path, mnist_session_dir, monkeypatch, url, hidden, expected
):
    """Each driver made missing by a package of that name on PYTHONPATH that cannot be
    imported (as when it is not installed)."""
    stub = tmp_path / "missing" / hidden
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(f'raise ImportError("No module named {hidden}")\n')
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "missing"))
    line = one_line(sweep(bpnet_exe, tmp_path, mnist_session_dir, "--storage", url), 1)
    scheme = url.split("://")[0]
    assert line == f"bpnet: error: --storage {scheme}://: {expected}"


@pytest.fixture
def silent_server():
    """A TCP server on 127.0.0.1 that accepts every connection and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    held, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.parametrize(
    "scheme,expected",
    [
        ("postgresql", "connection timeout expired"),
        ("mysql+pymysql", "Lost connection to MySQL server during query (timed out)"),
        ("redis", "Timeout reading from 127.0.0.1"),
    ],
)
def test_a_server_that_never_answers_is_given_up_on(
    bpnet_exe, tmp_path, mnist_session_dir, silent_server, scheme, expected
):
    """The command ends by itself with one line (the subprocess timeout only guards the test:
    without the connect timeouts it waits forever)."""
    password = "s3cret" if scheme != "redis" else ""
    user = f"bpnet:{password}@" if password else ""
    url = f"{scheme}://{user}127.0.0.1:{silent_server}/" + ("0" if scheme == "redis" else "db")
    r = sweep(bpnet_exe, tmp_path, mnist_session_dir, "--storage", url, timeout=90)
    line = one_line(r, 1)
    shown = url.replace(password, "***") if password else url
    assert line.startswith(f"bpnet: error: storage {shown}: ") and expected in line, line
    assert "s3cret" not in r.stdout + r.stderr


def test_a_password_is_never_shown(bpnet_exe, tmp_path, mnist_session_dir):
    from bpnet.sweep.urls import shown

    assert shown("postgresql://bpnet:pw@db-host:5432/sweeps") == (
        "postgresql://bpnet:***@db-host:5432/sweeps"
    )
    assert shown("sweeps/x/journal.log") == "sweeps/x/journal.log"
    db = tmp_path / "db.sqlite"
    r = sweep(bpnet_exe, tmp_path, mnist_session_dir, "--storage", f"sqlite:///{db}")
    assert r.returncode == 0, r.stderr
    assert f"in sqlite:///{db}" in r.stdout
