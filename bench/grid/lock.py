"""One writer per run folder: an exclusive lock file ``RUN_DIR/.lock``.

>>> with run_lock("runs/quick", log=print):
...     ...  # only this process computes cells of runs/quick

Guarantees:

- the lock file is created with ``O_CREAT | O_EXCL``: of two processes starting together
  exactly one gets it; the other gets a :class:`RunLocked` (a ``UserError``) naming the folder
  and the holder (pid, host, start time);
- a lock left by a dead process *on this host* is taken over, with a warning through ``log``;
  takers are serialised by a second ``O_EXCL`` file (``.lock.takeover``), so of several
  processes finding the same stale lock exactly one ends up holding the folder;
  a lock held from another host is never taken over (its pid cannot be checked from here):
  remove it by hand when you know that run is gone;
- the lock is released (its file removed) when the ``with`` block ends, also on an exception,
  but only if the file is still this process's own lock;
- a folder that cannot be written (a file, a read-only file system) is one :class:`UserError`
  before anything is created (:func:`bench.grid.folder.check_writable`).

Used by the local runner; any other executor driving a run folder takes the same lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.grid.folder import check_writable
from rvqvae.errors import UserError

LOCK_NAME = ".lock"
TAKEOVER_TIMEOUT_S = 30.0


class RunLocked(UserError):
    """The run folder is locked by another live process."""


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike,
             log: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold ``RUN_DIR/.lock`` for the duration of the block; yields the lock file's path."""
    run_dir = check_writable(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # e.g. made read-only since the check
        raise _unwritable(run_dir, error) from None
    path = run_dir / LOCK_NAME
    token = acquire(path, log=log)
    try:
        yield path
    finally:
        release(path, token)


def acquire(path: Path, *, log: Callable[[str], None] | None = None) -> str:
    """Create the lock file at ``path`` or raise :class:`RunLocked`; returns this holder's token.

    A stale lock (dead pid, same host) is removed and creation retried once.
    """
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "token": f"{os.getpid()}-{time.time_ns()}"}
    for attempt in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            other = read_holder(path)
            if attempt == 0 and _is_stale(other):
                if log is not None:
                    log(f"warning: taking over the stale lock {path} of dead process "
                        f"{_describe(other)}")
                _remove_if_unchanged(path, other)
                continue
            raise RunLocked(
                f"run folder {path.parent} is in use by {_describe(other)} (lock file {path}); "
                f"wait for it to finish, or delete the lock file if that process is gone"
            ) from None
        except OSError as error:  # read-only file system, no permission, disk full
            raise _unwritable(path.parent, error) from None
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(holder) + "\n")
        return holder["token"]
    raise RunLocked(f"run folder {path.parent}: could not take the lock {path}")  # raced twice


def release(path: Path, token: str) -> None:
    """Remove the lock file if it still holds ``token`` (never someone else's lock)."""
    if read_holder(path).get("token") == token:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _remove_if_unchanged(path: Path, stale: dict) -> None:
    """Delete the stale lock at ``path`` if it still holds ``stale``, serialised by a second
    ``O_EXCL`` file: of several processes taking a stale lock over, each deletes only the lock
    it judged stale, never a fresh one, and creation (``O_EXCL``) picks exactly one winner."""
    guard = path.with_name(path.name + ".takeover")
    with contextlib.suppress(FileNotFoundError):
        if time.time() - guard.stat().st_mtime > TAKEOVER_TIMEOUT_S:
            guard.unlink()  # left by a taker that died in the middle
    try:
        os.close(os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return  # another process is taking over right now: our O_EXCL retry decides
    try:
        if read_holder(path) == stale:
            path.unlink(missing_ok=True)
    finally:
        guard.unlink(missing_ok=True)


def read_holder(path: Path) -> dict:
    """The holder recorded in a lock file (``{}`` when it is missing or unreadable)."""
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _is_stale(holder: dict) -> bool:
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False  # another host's lock, or one being written right now: never steal it
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno == errno.ESRCH
    return False


def _unwritable(run_dir: Path, error: OSError) -> UserError:
    return UserError(f"cannot write into the run folder {run_dir} ({error.strerror or error}); "
                     f"pass another --out on a writable disk")


def _describe(holder: dict) -> str:
    if not holder:
        return "another process (lock file unreadable)"
    return (f"pid {holder.get('pid')} on host {holder.get('host')} "
            f"(started {holder.get('started')})")
