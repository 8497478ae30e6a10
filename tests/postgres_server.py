"""A throwaway PostgreSQL server for the feedback tests: initdb in a fresh temporary directory, started with
pg_ctl on a free loopback port (and a unix socket in that directory), stopped and deleted afterwards.

PostgreSQL refuses to run as root: as root the server runs as the ``postgres`` user (the Debian package
creates it), else ``nobody``; otherwise as the current user. Every reason it cannot run is returned as a
sentence for ``pytest.skip``: the binaries absent (Debian: ``apt-get install postgresql``; they live in
/usr/lib/postgresql/VERSION/bin, off PATH), no unprivileged user, initdb or the start failing."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

USER = "verticals"  # the database superuser initdb creates; its password is random per server


def find_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: PATH first, then Debian's versioned directories."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(f"{directory}/initdb", os.X_OK) and os.access(f"{directory}/pg_ctl", os.X_OK):
            return Path(directory)
    return None


def _run_as() -> tuple[list[str], int | None, int | None]:
    """The command prefix, uid and gid to run the server with (uid None: as the current user)."""
    if os.geteuid() != 0:
        return [], None, None
    runuser = shutil.which("runuser")
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if runuser:
            return [runuser, "-u", name, "--"], entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) or runuser to start "
                       "PostgreSQL with (it refuses to run as root)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """Start with :meth:`start` (RuntimeError with the reason when it cannot), :meth:`stop` in a finally."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.port = 0
        self.password = secrets.token_hex(12)
        self._bin: Path | None = None
        self._prefix: list[str] = []

    def start(self) -> PostgresServer:
        self._bin = find_binaries()
        if self._bin is None:
            raise RuntimeError("PostgreSQL is not installed (no initdb/pg_ctl on PATH or in "
                               "/usr/lib/postgresql/*/bin; Debian: apt-get install postgresql)")
        self._prefix, uid, gid = _run_as()
        # mkdtemp (mode 0700, in /tmp which everyone can traverse), handed to the server's user
        self.root = Path(tempfile.mkdtemp(prefix="verticals-pg-"))
        if uid is not None:
            os.chown(self.root, uid, gid if gid is not None else -1)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        if uid is not None:
            os.chown(pwfile, uid, -1)
        data = self.root / "data"
        self._call("initdb", "-D", str(data), "-U", USER, "--pwfile", str(pwfile), "--auth=scram-sha-256",
                   "-E", "UTF8", "--no-locale", "--no-sync")
        pwfile.unlink()
        for _ in range(3):  # a free port can be taken between the probe and the bind: try another
            self.port = _free_port()
            options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
            try:
                self._call("pg_ctl", "-D", str(data), "-l", str(self.root / "log"), "-o", options, "-w", "-t", "60",
                           "start")
                return self
            except RuntimeError as exc:
                failure = exc
        raise failure

    def _call(self, program: str, *args: str) -> None:
        assert self._bin is not None
        done = subprocess.run([*self._prefix, str(self._bin / program), *args], capture_output=True, text=True,
                              timeout=120, cwd=self.root)
        if done.returncode != 0:
            log = self.root / "log" if self.root else None
            tail = log.read_text(errors="replace")[-500:] if log and log.exists() else ""
            raise RuntimeError(f"{program} failed: {(done.stderr or done.stdout).strip()[-500:]} {tail}".strip())

    def stop(self) -> None:
        if self.root is None:
            return
        if (self.root / "data" / "postmaster.pid").exists():
            self._call("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "-t", "60", "stop")
        shutil.rmtree(self.root, ignore_errors=True)  # created by start(), nothing else lives there
        self.root = None

    def url(self, database: str = "postgres", password: bool = True) -> str:
        secret = f":{self.password}" if password else ""
        return f"postgresql+psycopg://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; returns its URL (with the password)."""
        import psycopg

        name = f"feedback_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, password=self.password,
                             dbname="postgres", autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
