#!/usr/bin/env python3
"""Lay out the managed plugin's root filesystem: what the plugin runs on, nothing else.

Runs inside the Dockerfile's build stage with the base image's own python3:

    python3 slim-rootfs.py /rootfs

and copies into /rootfs the interpreter (with its ``python3`` name on PATH), the
standard library without what a server never imports (tests, IDLE, Tk, curses,
the pip bootstrap, 2to3, distutils, ...), the extension modules it keeps, the
shared libraries those need (as ``ldd`` resolves them, the loader included,
with every symlink on the way), /opt/sriov (the plugin and its vendored
dependencies) and the empty directories the plugin's mounts and SQLite use. No
shell, no package manager, no pip: a managed plugin runs one process, and the
rootfs is a third of what a Debian base with python3 is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

# Standard-library packages and modules a server process never imports.
DROP_STDLIB = {
    "test", "idlelib", "tkinter", "turtledemo", "turtle.py", "ensurepip", "lib2to3",
    "pydoc_data", "distutils", "venv", "curses", "dbm", "site-packages", "dist-packages",
    "__phello__", "LICENSE.txt",
}  # fmt: skip
# Extension modules for terminals, audio, old databases and CPython's own tests (pyroute2
# imports ssl, so TLS stays).
DROP_EXTENSION = re.compile(
    r"^(_tkinter|_curses|_curses_panel|readline|_dbm|_gdbm|nis|_crypt|audioop|"
    r"ossaudiodev|_test\w*|xxlimited\w*|_xx\w*|_ctypes_test)\."
)
# Directories the plugin needs: its mounts' destinations, its socket's and a temp dir.
EMPTY_DIRS = ("run/docker/plugins", "host/docker-plugins", "host/sys", "tmp", "proc", "sys", "dev")
APP_DIR = Path("/opt/sriov")


def copy_path(path: str, dest: Path) -> None:
    """Copy ``path`` to the same place under ``dest``, recreating every symlink on the way."""
    parts = Path(path).parts[1:]
    current = Path("/")
    for index, part in enumerate(parts):
        current = current / part
        target = dest / current.relative_to("/")
        if current.is_symlink():
            link = os.readlink(current)
            if not target.is_symlink():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(link)
            resolved = (current.parent / link) if not link.startswith("/") else Path(link)
            rest = parts[index + 1 :]
            copy_path(os.path.normpath(resolved.joinpath(*rest)), dest)
            return
        if index == len(parts) - 1 and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            if current.is_dir():
                target.mkdir()
            else:
                shutil.copy2(current, target)


def copy_tree(source: Path, dest: Path, skip) -> list[Path]:
    """Copy the tree at ``source`` except names ``skip(name)`` refuses; return the files."""
    copied = []
    for root, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if not skip(d)]
        for name in files:
            if skip(name):
                continue
            path = Path(root) / name
            copy_path(str(path), dest)
            copied.append(path)
    return copied


def dropped_from_stdlib(name: str) -> bool:
    """Left out of the stdlib copy; lib-dynload is copied apart, with its own filter."""
    return name in DROP_STDLIB or name.startswith("config-") or name == "lib-dynload"


def needed_libraries(elf: Path) -> set[str]:
    """Shared libraries (and the loader) ``elf`` loads, as paths in this image."""
    out = subprocess.run(["ldd", str(elf)], capture_output=True, text=True).stdout
    found = set()
    for line in out.splitlines():
        match = re.search(r"(/\S+) \(0x", line)
        if match:
            found.add(match.group(1))
    return found


def is_elf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def main(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in os.listdir("/"):  # /bin, /lib, /lib64 -> usr/... on merged-usr systems
        if os.path.islink(f"/{name}"):
            copy_path(f"/{name}", dest)
    python = shutil.which("python3")
    copy_path(python, dest)
    elves = [Path(os.path.realpath(python))]
    paths = sysconfig.get_paths()
    stdlib = Path(paths["stdlib"])
    dynload = Path(paths["platstdlib"]) / "lib-dynload"
    copy_tree(stdlib, dest, dropped_from_stdlib)
    elves += [f for f in copy_tree(dynload, dest, DROP_EXTENSION.match) if f.suffix == ".so"]
    elves += [f for f in copy_tree(APP_DIR, dest, lambda n: False) if f.suffix == ".so"]
    for elf in elves:
        if is_elf(elf):
            for library in sorted(needed_libraries(elf)):
                copy_path(library, dest)
    for directory in EMPTY_DIRS:
        (dest / directory).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").chmod(0o1777)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
