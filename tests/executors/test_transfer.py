"""How jobs' files travel to the remote backends: packed deterministically, unpacked safely."""

from __future__ import annotations

import base64
import io
import os
import tarfile
from pathlib import Path

import pytest

from truthplane.errors import ExecutorError
from truthplane.executors._runner import UnsafeArchive, run_command, safe_extract
from truthplane.executors._transfer import digest, pack


def make_tree(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "tool.sh").write_text("#!/bin/sh\n")
    (root / "tool.sh").chmod(0o755)
    os.symlink("/etc/passwd", root / "escape")
    os.symlink("/etc", root / "etc-dir")
    os.mkfifo(root / "fifo")
    return root


def test_same_tree_same_bytes_and_digest(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "a")
    second = make_tree(tmp_path / "b")
    os.utime(second / "pkg" / "mod.py", (1, 1))  # times do not matter, content does
    assert digest(pack(str(first))) == digest(pack(str(second)))
    (second / "pkg" / "mod.py").write_text("x = 2\n")
    assert digest(pack(str(first))) != digest(pack(str(second)))


def test_round_trip_keeps_symlinks_as_links_and_modes_and_drops_fifos(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    dest = tmp_path / "dest"
    dest.mkdir()
    safe_extract(pack(str(source), {"pkg/mod.py": b"x = 3\n", "new/file.txt": b"new\n"}), str(dest))
    assert (dest / "pkg" / "mod.py").read_text() == "x = 3\n"
    assert (dest / "new" / "file.txt").read_text() == "new\n"
    assert os.readlink(dest / "escape") == "/etc/passwd"
    assert os.readlink(dest / "etc-dir") == "/etc"
    assert os.access(dest / "tool.sh", os.X_OK)
    assert not (dest / "fifo").exists()


@pytest.mark.parametrize("bad", ["../outside.txt", "/abs.txt", "a/../../b.txt"])
def test_files_outside_the_workspace_are_refused(bad: str) -> None:
    with pytest.raises(ExecutorError, match="escapes the workspace"):
        pack(None, {bad: b"x"})


def hostile_archive(*members: tuple[str, bytes, str]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as archive:
        for name, kind, target in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = target
                archive.addfile(info)
            else:
                data = target.encode()
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def test_an_archive_cannot_write_through_a_symlink_out_of_the_workspace(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    archive = hostile_archive(("link", tarfile.SYMTYPE, str(outside)), ("link/planted.txt", tarfile.REGTYPE, "owned"))
    with pytest.raises(UnsafeArchive, match="through a symlink"):
        safe_extract(archive, str(dest))
    assert list(outside.iterdir()) == []


def test_an_archive_cannot_climb_out(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchive, match="leaves the workspace"):
        safe_extract(hostile_archive(("../climbed.txt", tarfile.REGTYPE, "owned")), str(dest))
    assert not (tmp_path / "climbed.txt").exists()


def test_run_command_caps_output_and_counts_what_it_dropped(tmp_path: Path) -> None:
    result = run_command(["sh", "-c", "yes | head -c 5000"], str(tmp_path), {"PATH": "/usr/bin:/bin"}, b"", 10, 100)
    assert result["returncode"] == 0
    assert result["stdout_total"] == 5000
    assert base64.b64decode(result["stdout_b64"]) == b"y\n" * 50


def test_run_command_reports_a_missing_program(tmp_path: Path) -> None:
    result = run_command(["no-such-program-here"], str(tmp_path), {"PATH": "/usr/bin:/bin"}, b"", 10, 100)
    assert result["returncode"] == 127
    assert result["stderr_total"] > 0
