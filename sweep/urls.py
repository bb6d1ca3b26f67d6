"""What ``--storage`` names, and the refusal up front of a storage that cannot work.

A storage is a journal file (a path), a relational database (an SQLAlchemy URL:
``postgresql://``, ``mysql://``, ``sqlite:///PATH``) or a journal on Redis (``redis://``,
``rediss://``, ``unix://``). Before any process starts, :func:`check_storage` refuses what
could never hold a study shared by forked workers and several machines: an in-memory SQLite
database (each process would get its own, empty), an unknown scheme, a malformed URL, a journal
path that is a folder (exit status 2, one line); and a missing driver, named per scheme with
the command that installs it (exit status 1). A database server that accepts connections and
never answers is given ``CONNECT_TIMEOUT`` seconds (PyMySQL and Redis, whose only other
timeout covers every answer: ``READ_TIMEOUT``); a timeout given in the URL wins.
Nothing here connects; :func:`bpnet.sweep.study.open_storage` does.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bpnet.base.extras import ExtraMissing, install_hint
from bpnet.errors import InputError

CONNECT_TIMEOUT = 5  # seconds to reach a database server and hear from it
REDIS_SCHEMES = ("redis", "rediss", "unix")
# SQLAlchemy's driver (dialect.driver) -> what installs it
DRIVERS = {
    "psycopg": install_hint("postgres"),
    "psycopg2": "pip install psycopg2-binary",
    "pymysql": install_hint("mysql"),
    "mysqldb": "pip install mysqlclient",
}
READ_TIMEOUT = 2 * CONNECT_TIMEOUT  # seconds PyMySQL and Redis wait for any answer
TIMEOUT_ARGS = {  # driver -> its connect arguments for the timeouts (libpq's, MySQL's)
    "psycopg": {"connect_timeout": CONNECT_TIMEOUT},
    "psycopg2": {"connect_timeout": CONNECT_TIMEOUT},
    "mysqldb": {"connect_timeout": CONNECT_TIMEOUT},
    "pymysql": {"connect_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT},
}


class DriverMissing(ExtraMissing):
    """The database driver a storage URL needs is not installed (exit status 1)."""


def scheme(url):
    """``postgresql+psycopg`` of ``postgresql+psycopg://...``; None for a journal path."""
    head, sep, _ = str(url).partition("://")
    return head.lower() if sep else None


def shown(url):
    """The URL as messages show it: any password replaced by ``***``."""
    url = str(url)
    if scheme(url) is None:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


def _refuse(url, reason):
    return InputError(f"--storage {shown(url)}: {reason}")


def check_storage(url):
    """``"journal"``, ``"redis"`` or ``"rdb"``: the kind of storage ``url`` names, once it is
    known that it can work (see the module's text); creates a journal file's folder."""
    url = str(url)
    kind = scheme(url)
    if kind is None:
        _check_journal_path(url)
        return "journal"
    if kind in REDIS_SCHEMES:
        try:
            import redis  # noqa: F401
        except ImportError:
            raise DriverMissing(
                f"--storage {kind}://: a journal on Redis needs the redis package, which is "
                f"not installed: {install_hint('redis')}"
            ) from None
        return "redis"
    dialect = _dialect(url)
    _check_driver(url, dialect)
    return "rdb"


def _check_journal_path(url):
    path = Path(url)
    if path.is_dir():
        raise _refuse(url, "is a folder, expected a journal file (or a storage URL)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _refuse(url, f"cannot make its folder {path.parent} ({e.strerror or e})") from None
    if path.exists() and not path.is_file():
        raise _refuse(url, "is not a regular file, expected a journal file")


def _dialect(url):
    """SQLAlchemy's dialect class for ``url`` (not connected); refuses an in-memory SQLite."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as e:
        raise _refuse(url, f"not a storage URL ({e})") from None
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise _refuse(
            url,
            f"unknown storage scheme {scheme(url)}:// (expected postgresql://, mysql://, "
            f"sqlite:///PATH, redis:// or a journal file's path)",
        ) from None
    if dialect.name == "sqlite":
        database = parsed.database or ""
        memory = database in ("", ":memory:") or (
            "mode=memory" in database or parsed.query.get("mode") == "memory"
        )
        if memory:
            raise _refuse(
                url,
                "an in-memory SQLite database is private to each process, so the sweep's "
                "workers would not share it; give a file: sqlite:///PATH (or a journal file)",
            )
        if not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return dialect


def _check_driver(url, dialect):
    load = getattr(dialect, "import_dbapi", None) or getattr(dialect, "dbapi", None)
    try:
        load()
    except ImportError:
        driver = getattr(dialect, "driver", "its driver")
        hint = DRIVERS.get(driver, f"pip install the {driver} package")
        raise DriverMissing(
            f"--storage {scheme(url)}://: needs the database driver {driver}, which is not "
            f"installed: {hint}"
        ) from None


def engine_kwargs(url):
    """SQLAlchemy engine arguments for a relational storage: a connection checked before use,
    and ``CONNECT_TIMEOUT`` seconds to connect (PyMySQL: ``READ_TIMEOUT`` for any answer),
    unless the URL gives its own."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    timeouts = TIMEOUT_ARGS.get(parsed.get_dialect().driver, {})
    given = {k: v for k, v in timeouts.items() if k not in parsed.query}
    return {"pool_pre_ping": True, **({"connect_args": given} if given else {})}


def redis_url(url):
    """``url`` with socket timeouts (connect: ``CONNECT_TIMEOUT``; each answer:
    ``READ_TIMEOUT``), unless it gives its own."""
    parts = urlsplit(str(url))
    query = dict(parse_qsl(parts.query))
    query.setdefault("socket_connect_timeout", str(CONNECT_TIMEOUT))
    query.setdefault("socket_timeout", str(READ_TIMEOUT))
    return urlunsplit(parts._replace(query=urlencode(query)))
