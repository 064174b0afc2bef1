"""Directories on the host: per-execution work dirs, a twin's workspace, the sandbox /etc.

Layout under SANDBOX_DIR (created by the service, which may be root)::

    .etc/                     passwd, group, hosts, nsswitch.conf bound over /etc (0755)
    <twin>/                   0711: the sandbox uid may traverse, not list or write
    <twin>/workspace/         files written by file_write; read-only at /workspace (0755)
    <twin>/<execution id>/    0700, owned by the sandbox uid: /work of one execution

``file_write`` walks the relative path one component at a time with
``O_NOFOLLOW`` relative to directory fds, so neither ``..`` nor a symlink
(planted in any way) can lead outside the workspace.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from phoenix_common.errors import FailedPrecondition, InvalidInput, PermissionDenied
from phoenix_tools.sandbox import GENERATED_ETC, HOST_ETC_FILES

WORKSPACE = "workspace"
ETC_DIR = ".etc"
MAX_PATH_BYTES = 1024
MAX_COMPONENTS = 16
# How long an execution directory's removal is repeated while something still writes in it.
REMOVE_PATIENCE_S = 1.0
REMOVE_RETRY_S = 0.01
# No "=": a path never looks like the original's key=value arguments (tool_args.py).
_COMPONENT = re.compile(r"^[A-Za-z0-9._+@,-]{1,255}$")


@dataclass(frozen=True)
class Owner:
    """Who gets the execution directory: the sandbox uid/gid, or None to keep the caller's."""

    uid: int | None
    gid: int | None


def prepare_root(sandbox_dir: Path, host_root: Path = Path("/")) -> Path:
    """Create SANDBOX_DIR and the sandbox's /etc: the generated files, and copies of the host
    files the sandbox needs (HOST_ETC_FILES), as they are now. Returns the /etc directory,
    which the sandbox gets read-only as a whole. Nothing else of the host's /etc is in it."""
    sandbox_dir.mkdir(parents=True, exist_ok=True)
    sandbox_dir.chmod(0o711)
    etc = sandbox_dir / ETC_DIR
    etc.mkdir(exist_ok=True)
    etc.chmod(0o755)
    for name, text in GENERATED_ETC.items():
        _replace_file(etc / name, text.encode())
    for path in HOST_ETC_FILES:
        _copy_host_etc(host_root / path.lstrip("/"), etc / os.path.basename(path))
    return etc


def _replace_file(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    tmp.replace(target)


def _copy_host_etc(source: Path, target: Path) -> None:
    """``source`` as the sandbox should see it at ``target``: a symlink stays a symlink (to
    the same place: the sandbox has /usr where the host has it), a directory is copied with
    its symlinks as symlinks (/etc/alternatives), a file is copied. Absent: nothing."""
    fresh = target.with_name(f".{target.name}.new")
    _remove(fresh)
    if source.is_symlink():
        os.symlink(os.readlink(source), fresh)
    elif source.is_dir():
        shutil.copytree(source, fresh, symlinks=True)
        fresh.chmod(0o755)
    elif source.is_file():
        fresh.write_bytes(source.read_bytes())
        fresh.chmod(0o644)
    else:
        _remove(target)
        return
    if target.is_dir() and not target.is_symlink():
        # rename cannot replace a directory: move the old one aside first.
        old = target.with_name(f".{target.name}.old")
        _remove(old)
        target.rename(old)
        fresh.rename(target)
        _remove(old)
        return
    if fresh.is_dir() and not fresh.is_symlink():
        _remove(target)  # nor can a directory replace a file
    fresh.rename(target)  # atomically replaces a file or symlink


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def twin_dir(sandbox_dir: Path, twin_id: str) -> Path:
    path = sandbox_dir / twin_id
    path.mkdir(mode=0o711, exist_ok=True)
    return path


def workspace_dir(sandbox_dir: Path, twin_id: str) -> Path:
    path = twin_dir(sandbox_dir, twin_id) / WORKSPACE
    path.mkdir(mode=0o755, exist_ok=True)
    return path


def create_exec_dir(sandbox_dir: Path, twin_id: str, execution_id: str, owner: Owner) -> Path:
    """``<SANDBOX_DIR>/<twin>/<execution id>/``, writable by the sandbox uid only."""
    try:
        path = twin_dir(sandbox_dir, twin_id) / execution_id
        path.mkdir(mode=0o700)
        if owner.uid is not None:
            os.chown(path, owner.uid, owner.gid if owner.gid is not None else -1)
    except OSError as err:
        raise FailedPrecondition(
            f"sandbox_init_failed: cannot create the execution directory under "
            f"{sandbox_dir}: {err.strerror}"
        ) from err
    return path


def remove_exec_dir(path: Path) -> None:
    """Delete an execution directory; rmtree never follows symlinks planted inside.

    A sandboxed process the kernel is still killing (bwrap's init lets go of the output
    pipes before its namespace's other processes are gone) can create a file while the
    tree is removed, so the removal is repeated until the directory is gone, for up to
    REMOVE_PATIENCE_S. Called in a thread, never on the event loop.
    """
    deadline = time.monotonic() + REMOVE_PATIENCE_S
    while True:
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path) or time.monotonic() > deadline:
            return
        time.sleep(REMOVE_RETRY_S)


def validate_relative_path(relative: str) -> list[str]:
    """The components of a file_write path; InvalidInput for anything but plain names."""
    if not relative:
        raise InvalidInput("file_write needs args[0]: a path relative to the twin's workspace")
    if len(relative.encode()) > MAX_PATH_BYTES:
        raise InvalidInput(f"file_write path is longer than {MAX_PATH_BYTES} bytes")
    if relative.startswith("/"):
        raise PermissionDenied(f"file_write path {relative!r} is absolute; use a relative path")
    parts = relative.split("/")
    if any(p in ("..", ".") for p in parts):
        raise PermissionDenied(f"file_write path {relative!r} leaves or re-enters the workspace")
    parts = [p for p in parts if p]
    if not parts or len(parts) > MAX_COMPONENTS:
        raise InvalidInput(f"file_write path needs 1-{MAX_COMPONENTS} components")
    bad = next((p for p in parts if not _COMPONENT.match(p)), None)
    if bad is not None:
        raise InvalidInput(
            f"file_write path component {bad!r} has characters outside [A-Za-z0-9._+@,-]"
        )
    return parts


def write_file(workspace: Path, relative: str, content: str) -> int:
    """Write ``content`` to ``workspace/relative`` without following any symlink; bytes written."""
    parts = validate_relative_path(relative)
    data = content.encode()
    flags_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(workspace, flags_dir)
    try:
        for name in parts[:-1]:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=fd)
            try:
                next_fd = os.open(name, flags_dir, dir_fd=fd)
            except OSError as err:
                raise _escape(relative, err) from err
            os.close(fd)
            fd = next_fd
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            out = os.open(parts[-1], flags, 0o644, dir_fd=fd)
        except OSError as err:
            raise _escape(relative, err) from err
        try:
            os.fchmod(out, 0o644)
            view = memoryview(data)
            while view:
                view = view[os.write(out, view) :]
        finally:
            os.close(out)
    finally:
        os.close(fd)
    return len(data)


def _escape(relative: str, err: OSError) -> Exception:
    if err.errno in (errno.ELOOP, errno.ENOTDIR, errno.EISDIR):
        return PermissionDenied(
            f"file_write path {relative!r} goes through a symlink or non-directory; refused"
        )
    return FailedPrecondition(f"file_write failed for {relative!r}: {err.strerror}")
