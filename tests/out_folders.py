"""``--out`` folders that cannot be written, and the one line each must give (issue #22)."""

from __future__ import annotations

import os
from pathlib import Path

WHERE = ("file", "inside a file", "read-only")


def unwritable_out(tmp_path: Path, where: str, monkeypatch) -> tuple[Path, str]:
    """``(out, expected error)`` for an ``--out`` that is an existing file, lies below a file,
    or lies in a folder that ``os.access`` reports read-only (as on a read-only file system:
    the tests run as root, whom permissions do not stop)."""
    (tmp_path / "file").write_text("not a folder\n")
    (tmp_path / "ro").mkdir()
    out = {"file": tmp_path / "file", "inside a file": tmp_path / "file" / "out",
           "read-only": tmp_path / "ro" / "out"}[where]
    if where == "read-only":
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(
            tmp_path / "ro") else real_access(path, mode))
    expected = {
        "file": f"--out {out} is a file, not a folder; pass a folder path (it is created if "
                f"missing)",
        "inside a file": f"--out {out} cannot be created: {tmp_path / 'file'} is a file; pass "
                         f"another --out",
        "read-only": f"--out {out} cannot be written: {tmp_path / 'ro'} is read-only (a "
                     f"read-only file system or no permission); pass another --out on a "
                     f"writable disk"}[where]
    return out, f"rvqvae-bench: error: {expected}\n"
