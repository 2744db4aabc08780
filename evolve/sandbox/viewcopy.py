"""The view's files as private copies on a tmpfs: every page always in memory.

Read-only binds of the host's files shared its page cache with every process on the
machine: a candidate evicted the pages of a rarely read file (``posix_fadvise(DONTNEED)``),
read chosen ones, and a later candidate, in another run, read the bits back by timing a
one-byte read of each page (``tests/test_page_cache_attacks.py``).  A tmpfs page is memory
(there is no backing file to drop it to, ``fadvise`` does nothing there, and a tmpfs keeps no
negative dentries), so residency carries no signal.

Copied, once per worker, is what a candidate can still load: the stdlib and the allowed
packages without their test suites, IDLE, tkinter and other-version bytecode, and of the
system's libraries only those an extension module not yet loaded needs (``DT_NEEDED``,
transitively).  Files the worker has mapped are not copied (what they hold is in memory
already, and the loader finds a loaded library by its name); the worker faults in every page
of its file mappings instead, so a candidate touching them finds each page present
(``populate_mappings``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
import sys
from collections.abc import Iterable
from stat import S_IMODE, S_ISDIR, S_ISLNK, S_ISREG

# Never needed by a heuristic, and large: test suites, IDLE, tkinter, the static libpython
# and its build files, pip's bundled wheels.
SKIP_DIRS = frozenset({"test", "tests", "idle_test", "idlelib", "tkinter", "turtledemo", "lib2to3",
                       "ensurepip", "__phello__", "pydoc_data"})
SKIP_PREFIXES = ("config-3",)
# Extension modules for networking, databases and terminals, whose system libraries (OpenSSL,
# Kerberos, SQLite, ncurses) would be most of what is copied from /usr; hashlib falls back to
# its built-in hashes without _hashlib.
SKIP_EXTENSIONS = ("_tkinter", "_ssl", "_hashlib", "_sqlite3", "readline", "_curses", "_curses_panel",
                   "_dbm", "_gdbm", "nis", "_crypt")
# Build-time files of packages: stubs, headers, sources, static libraries.
SKIP_SUFFIXES = (".pyi", ".h", ".c", ".pxd", ".pyx", ".a")
LIB_DIRS = ("/lib64", "/usr/lib64", "/lib", "/usr/lib")
MADV_POPULATE_READ = 22  # Linux 5.14


def mapped_files() -> dict[tuple[int, int], str]:
    """(device, inode) -> path of every file this process has mapped (libraries, numpy's .so)."""
    found: dict[tuple[int, int], str] = {}
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            path = fields[5].strip() if len(fields) == 6 else ""
            if path.startswith("/") and not path.endswith(" (deleted)"):
                with contextlib.suppress(OSError):
                    st = os.stat(path)
                    found[(st.st_dev, st.st_ino)] = path
    return found


def populate_mappings() -> int:
    """Fault in every page of this process's file mappings; returns how many ranges took it.

    A child shares them, so its first touch of a page is a minor fault whatever earlier
    candidates did; pages mapped in some process are also skipped by ``fadvise(DONTNEED)``.
    """
    madvise = ctypes.CDLL(None, use_errno=True).madvise
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    done = 0
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/") and "r" in fields[1]:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                done += madvise(start, end - start, MADV_POPULATE_READ) == 0
    return done


def _wanted(name: str, is_dir: bool) -> bool:
    if is_dir:
        return name not in SKIP_DIRS and not name.startswith(SKIP_PREFIXES)
    if name.endswith(".pyc"):  # only this interpreter's plain bytecode
        return name.endswith(f".{sys.implementation.cache_tag}.pyc")
    if name.endswith(".so") and (name.split(".")[0] in SKIP_EXTENSIONS or name.startswith(("_test", "_simd."))):
        return False  # and CPython's and numpy's test helpers
    return not name.startswith(SKIP_PREFIXES) and not name.endswith(SKIP_SUFFIXES)


class Copier:
    """Copies trees into ``store`` at their own paths, leaving out ``masks`` and mapped files."""

    def __init__(self, store: str, masks: Iterable[str]) -> None:
        self.store = store
        self.masks = {os.path.abspath(m) for m in masks}
        self.mapped = mapped_files()
        self.loaded = {os.path.basename(p) for p in self.mapped.values()}
        self.elves: list[str] = []  # copied shared objects, for their dependencies
        self.files = self.bytes = 0

    def tree(self, path: str) -> None:
        """``path`` and what is under it; a symlink named here is copied as what it points to
        (binding a symlink would bind the host's file it resolves to)."""
        try:
            st = os.stat(path)
        except OSError:
            return
        self._dirs(os.path.dirname(path))
        if S_ISDIR(st.st_mode):
            self._walk(path, st)
        elif S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in self.mapped \
                and not os.path.lexists(self.store + path):
            self._copy(path, self.store + path, st)

    def _walk(self, top: str, st: os.stat_result) -> None:
        os.makedirs(self.store + top, 0o755, exist_ok=True)
        os.chmod(self.store + top, S_IMODE(st.st_mode) & 0o755)
        if top in self.masks or os.path.basename(top) in ("site-packages", "dist-packages"):
            # shown empty; an allowed package inside is a tree of its own
            return
        try:
            entries = list(os.scandir(top))
        except OSError:  # unreadable to us (without root): not shown, as a bind would not show it
            return
        for entry in entries:
            try:
                sub = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if S_ISDIR(sub.st_mode):
                if _wanted(entry.name, True):
                    self._walk(entry.path, sub)
            elif _wanted(entry.name, False):
                self._entry(entry.path, sub)

    def _entry(self, path: str, st: os.stat_result) -> None:
        target = self.store + path
        if os.path.lexists(target):
            return
        if S_ISLNK(st.st_mode):
            os.symlink(os.readlink(path), target)
        elif S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in self.mapped:
            self._copy(path, target, st)

    def _copy(self, source: str, target: str, st: os.stat_result) -> None:
        try:
            fin = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # unreadable to us (without root): left out
            return
        try:
            head = os.pread(fin, 4, 0)
            fout = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                offset = 0
                while offset < st.st_size:
                    sent = os.sendfile(fout, fin, offset, st.st_size - offset)
                    if sent == 0:
                        break
                    offset += sent
                os.fchmod(fout, S_IMODE(st.st_mode) & 0o755)
                os.utime(fout, ns=(st.st_atime_ns, st.st_mtime_ns))  # bytecode checks the mtime
            finally:
                os.close(fout)
        finally:
            os.close(fin)
        self.files += 1
        self.bytes += st.st_size
        if head == b"\x7fELF":
            self.elves.append(source)

    def _dirs(self, path: str) -> None:
        os.makedirs(self.store + path, 0o755, exist_ok=True)

    def libraries(self) -> None:
        """The system libraries the copied extension modules need, transitively."""
        system = {os.path.dirname(p) for p in self.mapped.values() if ".so" in os.path.basename(p)}
        done: set[str] = set()
        while self.elves:
            elf = self.elves.pop()
            needed, runpath = needs(elf)
            dirs = [d.replace("$ORIGIN", os.path.dirname(elf)) for d in runpath] + sorted(system) + list(LIB_DIRS)
            for name in needed:
                if name in self.loaded or name in done:
                    continue
                done.add(name)
                for d in dirs:
                    path = os.path.join(d, name)
                    if os.path.isfile(path):
                        real = os.path.join(os.path.realpath(d), name)  # /lib -> usr/lib and so on
                        self._dirs(os.path.dirname(real))
                        if not os.path.lexists(self.store + real):
                            self._copy(os.path.realpath(path), self.store + real, os.stat(path))
                        break


def needs(path: str) -> tuple[list[str], list[str]]:
    """(DT_NEEDED names, DT_RUNPATH/DT_RPATH dirs) of a 64-bit little-endian ELF file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return [], []
    if data[:6] != b"\x7fELF\x02\x01":
        return [], []
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dynamic = [], None
    for k in range(phnum):
        ptype, _, offset, vaddr, _, filesz = struct.unpack_from("<IIQQQQ", data, phoff + k * phentsize)
        if ptype == 1:
            loads.append((vaddr, offset, filesz))
        elif ptype == 2:
            dynamic = (offset, filesz)
    if dynamic is None:
        return [], []
    entries = [struct.unpack_from("<qQ", data, dynamic[0] + 16 * k) for k in range(dynamic[1] // 16)]
    strtab = next((v for tag, v in entries if tag == 5), None)
    base = next((strtab - va + off for va, off, size in loads if strtab is not None and va <= strtab < va + size),
                None)
    if base is None:
        return [], []

    def text(at: int) -> str:
        return data[base + at:data.index(b"\0", base + at)].decode(errors="replace")

    needed = [text(v) for tag, v in entries if tag == 1]
    runpath = [d for tag, v in entries if tag in (15, 29) for d in text(v).split(":") if d]
    return needed, runpath
