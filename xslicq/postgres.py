"""A PostgreSQL server in a folder, for Optuna studies shared by several sweep workers.

``python -m xslicq.postgres start`` (or ``scripts/postgres.sh start``, ``make postgres``)
creates the server in ``outputs/postgres`` on first use (``initdb``), starts it
(``pg_ctl``), creates the database and prints the storage URL to pass to a sweep as
``hydra.sweeper.storage=<url>``; ``stop`` stops it and keeps its data (the studies), so
``start`` again serves the same studies at the same URL. The tests' ``postgres_url``
fixture starts its throwaway servers with :func:`start` and :func:`stop`.

- The server's settings (port, listen address, user, database) are chosen when the folder
  is created and kept in ``<folder>/server.json``; the port is a free one unless given.
- Listening on 127.0.0.1 (the default) it trusts every local connection: a server for the
  workers of one machine. With ``--listen`` another address (``'*'``: every interface),
  connections need the password that ``initdb`` set (kept in ``<folder>/password``, mode
  0600) and the URL carries it, with the machine's name as host.
- PostgreSQL refuses to run as root: as root the tools run as the ``postgres`` user
  (``runuser``), which owns the folder and must be able to reach it.
- The programs come from Debian's ``postgresql`` package (installed by scripts/setup.sh):
  on PATH or in ``/usr/lib/postgresql/<version>/bin``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

DEFAULT_FOLDER = Path("outputs/postgres")
DEFAULTS = {"listen": "127.0.0.1", "user": "xslicq", "database": "optuna"}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
SETTINGS = "server.json"
TIMEOUT_S = 120


class PostgresError(RuntimeError):
    """PostgreSQL is missing, or one of its programs failed (the message has its output)."""


def find_bindir() -> Path | None:
    """The folder with PostgreSQL's programs (``initdb``, ``pg_ctl``, ``createdb``, ``psql``):
    the one ``initdb`` on PATH lives in, else the newest ``/usr/lib/postgresql/*/bin``;
    ``None`` when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


def free_port() -> int:
    """A TCP port that nothing listens on now (the system's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bindir() -> Path:
    bindir = find_bindir()
    if bindir is None:
        raise PostgresError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    return bindir


def _as_server_user() -> list[str]:
    """The command prefix that runs a program as the server's user: ``postgres`` for root."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _run(tool: str, *args: str, password: str | None = None) -> str:
    """Run one of PostgreSQL's programs (as the server's user); its stdout, or a
    :class:`PostgresError` with its output when it fails."""
    env = {**os.environ, "LC_MESSAGES": "C"}
    if password is not None:
        env["PGPASSWORD"] = password
    command = [*_as_server_user(), str(_bindir() / tool), *args]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise PostgresError(f"{tool} did not finish in {TIMEOUT_S} s") from err
    if result.returncode != 0:
        output = " ".join((result.stderr or result.stdout).split())
        raise PostgresError(f"{tool} failed (exit status {result.returncode}): {output}")
    return result.stdout


def settings(folder: str | Path) -> dict:
    """The settings a server folder was created with (``server.json``)."""
    path = Path(folder) / SETTINGS
    if not path.is_file():
        raise PostgresError(f"{folder} holds no server: run `python -m xslicq.postgres start`")
    return json.loads(path.read_text())


def url(folder: str | Path = DEFAULT_FOLDER) -> str:
    """The storage URL of the server in ``folder``:
    ``postgresql://<user>[:<password>]@<host>:<port>/<database>``."""
    s = settings(folder)
    password = (Path(folder) / "password").read_text().strip() if s["password"] else ""
    login = f"{s['user']}:{password}" if password else s["user"]
    return f"postgresql://{login}@{s['host']}:{s['port']}/{s['database']}"


def _own(path: Path) -> None:
    """As root, give ``path`` to the ``postgres`` user and check that it can reach it."""
    if os.geteuid() != 0:
        return
    import pwd

    user = pwd.getpwnam("postgres")
    os.chown(path, user.pw_uid, user.pw_gid)
    check = subprocess.run([*_as_server_user(), "test", "-w", str(path)], check=False)
    if check.returncode != 0:
        raise PostgresError(
            f"the postgres user cannot write to {path} (a parent folder is closed to it); "
            "choose a folder it can reach, e.g. --dir /tmp/xslicq-postgres"
        )


def _check(port: int | None, listen: str, user: str, database: str) -> None:
    for key, value in (("user", user), ("database", database)):
        if not NAME.fullmatch(value):
            raise PostgresError(
                f"{key} {value!r}: use letters, digits and _ (not first), at most 63"
            )
    if not re.fullmatch(r"[A-Za-z0-9.:*_-]+(,[A-Za-z0-9.:*_-]+)*", listen):
        raise PostgresError(f"listen {listen!r}: a host name, address, or '*'")
    if port is not None and not 1024 <= port <= 65535:
        raise PostgresError(f"port {port}: need 1024 <= port <= 65535")


def _initialise(
    folder: Path, port: int | None, listen: str, user: str, database: str, durable: bool
) -> None:
    """``initdb`` in ``folder/data`` and the server's settings, written into its
    ``postgresql.conf`` (so that ``pg_ctl start`` needs nothing else) and ``server.json``."""
    _check(port, listen, user, database)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    _own(folder)
    remote = listen not in LOOPBACK
    args = ["-D", str(folder / "data"), "-U", user, "-E", "UTF8", "--auth-local=trust"]
    if remote:  # every TCP connection needs the password, the local ones included
        password_file = folder / "password"
        password_file.write_text(secrets.token_urlsafe(18) + "\n")
        password_file.chmod(0o600)
        _own(password_file)
        args += ["--auth-host=scram-sha-256", f"--pwfile={password_file}"]
    else:
        args += ["--auth-host=trust"]
    if not durable:
        args += ["--no-sync"]
    _run("initdb", *args)
    port = port or free_port()
    conf = [
        "",
        "# xslicq.postgres",
        f"port = {port}",
        f"listen_addresses = '{listen}'",
        "unix_socket_directories = ''",  # TCP only: a socket path can exceed 107 characters
    ]
    if not durable:  # a throwaway server (the tests): no waiting for the disk
        conf += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
    if remote:
        hba = folder / "data" / "pg_hba.conf"
        with hba.open("a") as f:
            f.write("host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n")
    with (folder / "data" / "postgresql.conf").open("a") as f:
        f.write("\n".join(conf) + "\n")
    host = socket.getfqdn() if remote else "127.0.0.1"
    (folder / SETTINGS).write_text(
        json.dumps(
            {
                "port": port,
                "listen": listen,
                "host": host,
                "user": user,
                "database": database,
                "password": remote,
            },
            indent=2,
        )
        + "\n"
    )


def running(folder: str | Path = DEFAULT_FOLDER) -> bool:
    """Whether the server of ``folder`` runs (``pg_ctl status``)."""
    try:
        _run("pg_ctl", "-D", str(Path(folder) / "data"), "status")
    except PostgresError:
        return False
    return True


def start(
    folder: str | Path = DEFAULT_FOLDER,
    *,
    port: int | None = None,
    listen: str | None = None,
    user: str | None = None,
    database: str | None = None,
    durable: bool = True,
) -> str:
    """Start the server of ``folder`` (created first if the folder has none; already running
    is fine), create its database if missing, and return its storage URL.

    ``port`` (default: a free one), ``listen`` (127.0.0.1), ``user`` (xslicq) and
    ``database`` (optuna) apply when the folder is created; a later start with other
    values raises :class:`PostgresError`. ``durable=False`` turns off fsync: for a
    throwaway server whose data may be lost."""
    folder = Path(folder).absolute()
    asked = {"port": port, "listen": listen, "user": user, "database": database}
    if not (folder / SETTINGS).is_file():
        if (folder / "data").exists():
            raise PostgresError(f"{folder / 'data'} exists but {SETTINGS} does not: remove it")
        chosen = {k: v if v is not None else DEFAULTS.get(k) for k, v in asked.items()}
        _initialise(folder, durable=durable, **chosen)
    s = settings(folder)
    for key, value in asked.items():
        if value is not None and value != s[key]:
            raise PostgresError(
                f"{folder} holds a server with {key}={s[key]!r}, not {value!r}: "
                "leave the option out, or choose another --dir"
            )
    if not running(folder):
        _run(
            "pg_ctl",
            "-D",
            str(folder / "data"),
            "-l",
            str(folder / "server.log"),
            "-w",
            "-t",
            str(TIMEOUT_S // 2),
            "start",
        )
    password = (folder / "password").read_text().strip() if s["password"] else None
    login = ["-h", "127.0.0.1", "-p", str(s["port"]), "-U", s["user"]]
    exists = _run(
        "psql",
        *login,
        "-d",
        "postgres",
        "-tAc",
        f"SELECT 1 FROM pg_database WHERE datname = '{s['database']}'",
        password=password,
    )
    if exists.strip() != "1":
        _run("createdb", *login, s["database"], password=password)
    return url(folder)


def stop(folder: str | Path = DEFAULT_FOLDER, *, mode: str = "fast") -> None:
    """Stop the server of ``folder`` (its data stays); nothing to do if it is not running.
    ``mode``: ``pg_ctl``'s shutdown mode (``smart``, ``fast`` or ``immediate``)."""
    folder = Path(folder).absolute()
    settings(folder)  # a clear error for a folder without a server
    if running(folder):
        _run("pg_ctl", "-D", str(folder / "data"), "-m", mode, "-w", "stop")


def main(argv: list[str] | None = None) -> int:
    from .cli import error_line

    parser = argparse.ArgumentParser(
        prog="python -m xslicq.postgres",
        description="A PostgreSQL server in a folder for Optuna studies shared by sweep "
        "workers: `start` prints the URL to pass as hydra.sweeper.storage=<url>.",
    )
    parser.add_argument("action", choices=["start", "stop", "status", "url"])
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_FOLDER, help="the server's folder (%(default)s)"
    )
    parser.add_argument("--port", type=int, help="TCP port, when creating (default: a free one)")
    parser.add_argument(
        "--listen",
        help="listen address, when creating (default 127.0.0.1: this machine only; "
        "'*': workers on other machines too, with a password)",
    )
    parser.add_argument("--user", help="database user, when creating (default xslicq)")
    parser.add_argument("--database", help="database, when creating (default optuna)")
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            print(
                start(
                    args.dir,
                    port=args.port,
                    listen=args.listen,
                    user=args.user,
                    database=args.database,
                )
            )
        elif args.action == "stop":
            stop(args.dir)
            print(f"stopped the server in {args.dir} (its studies stay there)")
        elif args.action == "status":
            state = "running" if running(args.dir) else "stopped"
            print(f"{state}: {url(args.dir)}")
            return 0 if state == "running" else 3
        else:
            print(url(args.dir))
    except (PostgresError, OSError) as err:
        print(error_line(err), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
