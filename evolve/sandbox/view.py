"""The candidate's filesystem: an allow-list, built once by the zygote after its imports.

A fresh tmpfs becomes the root (``pivot_root``); into it go, read-only, the
Python runtime (its stdlib), the packages a candidate may import (numpy by
default), the system libraries their extension modules need and a few ``/etc``
files the loader reads, all as private copies on a tmpfs (``viewcopy.py``: the
host's page cache and dentries were a channel between candidates), plus a
minimal ``/dev`` and private writable ``/tmp``, ``/var/tmp`` and ``/dev/shm``.
Every ``site-packages``/``dist-packages`` dir inside those trees is covered by
an empty tmpfs (so an installed ``evolve`` with ``problems/*/data``, or any
other package, is not there) and only the allowed packages are bound back.
There is no ``/proc``, ``/sys``, home, checkout, ``.git`` or run folder: what is
not listed does not exist.  Everything the child needs from our own code was
imported before, so it needs none of it on disk.

Called in a private mount namespace by a process that may mount (root, or the
owner of a fresh user namespace).
"""

from __future__ import annotations

import contextlib
import os
import site
import stat
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.machinery import PathFinder
from pathlib import Path

from evolve.sandbox import oslevel, viewcopy

SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin")
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime")
DEVICES = ("null", "zero", "full", "random", "urandom")
WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")
DEFAULT_PACKAGES = ("numpy",)
NESTED: list[str] = []  # the view's mounts inside a writable dir (a runtime in a venv under /tmp)

_FLAGS = oslevel.MS_NOSUID | oslevel.MS_NODEV
_ST_TO_MS = ((os.ST_NOSUID, oslevel.MS_NOSUID), (os.ST_NODEV, oslevel.MS_NODEV),
             (os.ST_NOEXEC, oslevel.MS_NOEXEC), (os.ST_NOATIME, 1024), (os.ST_NODIRATIME, 2048),
             (os.ST_RELATIME, 1 << 21))


def package_roots(names: tuple[str, ...], path: list[str]) -> list[str]:
    """The top-level files and dirs of each installed distribution (numpy, numpy.libs, ...),
    looked up on ``path`` (the worker's ``sys.path``).

    Worked out by the trusted process (``Sandbox``), which sends the worker the result:
    ``importlib.metadata`` and what it imports (``email``, ``zipfile``: 31 modules, ~1.5 MiB
    of the worker's heap) would otherwise stay in the warm worker, whose every page of heap
    each candidate's fork copies a page-table entry of and its exit drops again.
    """
    from importlib import metadata  # here, not at the top: see above

    roots: set[str] = set()
    for name in names:
        dist = next(iter(metadata.distributions(name=name, path=path)), None)
        if dist is not None:
            # Only what lies under the distribution's own dir: a RECORD may name files elsewhere,
            # '../../../bin/f2py', or an absolute path (a legacy install's data file), whose first
            # part '/' was a root: the whole machine in the view (sixteenth red team).
            tops = {Path(str(f)).parts[0] for f in dist.files or []
                    if not str(f).startswith("..") and not Path(str(f)).is_absolute()}
            roots.update(str(dist.locate_file(top)) for top in tops if not top.endswith(".dist-info"))
        else:
            spec = PathFinder.find_spec(name, path)
            if spec is not None and spec.submodule_search_locations:
                roots.update(spec.submodule_search_locations)
            elif spec is not None and spec.origin:
                roots.add(spec.origin)
    return sorted(os.path.abspath(r) for r in roots if os.path.exists(r))


def runtime_paths() -> list[str]:
    """The interpreter's stdlib (with lib-dynload) and its shared library."""
    paths = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib")}
    libdir, ldlib = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY")
    if libdir and ldlib and sysconfig.get_config_var("Py_ENABLE_SHARED"):
        paths.add(os.path.join(libdir, ldlib))
    return sorted(os.path.abspath(p) for p in paths if p and os.path.exists(p))


def masked_dirs(extra: tuple[str, ...]) -> list[str]:
    """Dirs that must look empty wherever they fall inside an allowed tree."""
    dirs = set(site.getsitepackages()) | {site.getusersitepackages()}
    # Run from a venv, the base interpreter's own site-packages lies inside its stdlib, which
    # is shown: it held every package installed there (scipy, ortools, torch, evolve's
    # editable finder), importable after a ``sys.path.append``.
    dirs |= set(site.getsitepackages([sys.base_prefix, sys.base_exec_prefix]))
    dirs |= {p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")}
    import evolve

    package = Path(evolve.__file__).resolve().parent
    dirs |= {str(package), str(package.parent)}  # an editable checkout under /usr, say
    dirs |= set(extra)
    return sorted(os.path.abspath(d) for d in dirs if d and os.path.exists(d))


def _within(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def plan(binds: list[str], masks: list[str]) -> list[tuple[str, str]]:
    """(path, "bind"|"mask") in mounting order; masks only inside binds, binds only where
    they add something (inside a mask, or outside every bind)."""
    ops: list[tuple[str, str]] = []
    for path, kind in sorted([(b, "bind") for b in set(binds)] + [(m, "mask") for m in set(masks)],
                             key=lambda op: (op[0].count("/"), op[0])):
        enclosing = [op for op in ops if _within(path, op[0]) and op[0] != path]
        nearest = max(enclosing, key=lambda op: len(op[0]))[1] if enclosing else None
        if (kind == "mask" and nearest == "bind") or (kind == "bind" and nearest in (None, "mask")):
            ops.append((path, kind))
    return ops


def enter_view(scratch: str, file_size_mb: int, roots: list[str],
               hide: tuple[str, ...]) -> tuple[str, ...]:
    """Build the view under ``scratch`` and pivot into it; returns the writable dirs.
    ``roots``: the allowed packages' files and dirs (``package_roots``)."""
    root = tempfile.mkdtemp(prefix="view-", dir=scratch)
    etc = [f for f in ETC_FILES if os.path.exists(f)]
    room = 1 + -(-sum(os.stat(f).st_size for f in etc) // (1 << 20))  # MiB: the skeleton, and the /etc files
    oslevel.mount("tmpfs", root, "tmpfs", _FLAGS, f"size={room}m,nr_inodes=4096,mode=755")
    shown = runtime_paths() + [os.path.abspath(r) for r in roots if os.path.exists(r)]
    trees = shown + etc
    binds = [d for d in SYSTEM_DIRS if os.path.isdir(d) and not os.path.islink(d)] + shown
    hidden = masked_dirs(hide)
    ops = plan(binds, hidden)
    NESTED[:] = [path for path, _ in ops if any(_within(path, d) for d in WRITABLE)]
    store = _copy_of(scratch, trees, hidden)
    for d in SYSTEM_DIRS:  # merged /usr: /lib -> usr/lib and so on
        if os.path.islink(d):
            os.symlink(os.readlink(d), root + d)
    # The private /tmp goes in first: a runtime or package under /tmp (a venv made there)
    # is then bound on top of it, not buried beneath it.
    size = max(64, 4 * file_size_mb)
    for d in ("/tmp", "/var/tmp"):
        os.makedirs(root + d, 0o755, exist_ok=True)
        oslevel.mount("tmpfs", root + d, "tmpfs", _FLAGS, f"size={size}m,nr_inodes=4096,mode=1777")
    masks = []
    for path, kind in ops:
        target = root + path
        if kind == "mask" and not os.path.isdir(path):  # a file: an empty one in its place
            _bind_readonly("/dev/null", target)
        elif kind == "mask":
            oslevel.mount("tmpfs", target, "tmpfs", _FLAGS, "size=64k,nr_inodes=1024,mode=755")
            masks.append(target)
        elif os.path.lexists(store + path):  # not there: nothing of it is needed (or it is mapped)
            _bind_readonly(store + path, target)
    for path in etc:  # copied into the root itself: a bind each was a mount in every child's namespace
        _copy_file(store + path, root + path)
    oslevel.umount_detach(store)  # the binds keep its files; the dir must not stay a mount point
    os.rmdir(store)  # (the zygote removes the controller's temp dir it lies in)
    _make_dev(root, file_size_mb)
    for target in [*masks, root]:  # nothing of the skeleton is writable
        oslevel.mount("none", target, None, oslevel.MS_REMOUNT | oslevel.MS_RDONLY | _FLAGS, None)
    os.chdir(root)
    oslevel.pivot_root(".", ".")  # the old root is stacked on the new one...
    oslevel.umount_detach(".")  # ...and goes
    os.chdir("/")
    return WRITABLE


@dataclass(frozen=True)
class Renewal:
    """How a child renews the worker's writable dirs (``renew``), worked out once by the zygote
    (``renewal``): what is left for the child is system calls and a few lines of Python, whose
    every first touch of a page it shares with the forker is a copy-on-write fault (deciding
    it all in each child cost ~0.3 ms of its CPU and ~60 faults)."""

    mounts: tuple[tuple[str, tuple[tuple[str, str, bool], ...]], ...]  # (dir, its view mounts held aside)
    data: bytes  # the tmpfs options
    parents: tuple[str, ...]  # the work dirs' parent and the dirs above it inside a renewed dir, to make
    # The calls, their ctypes arguments made once too (oslevel.prepared): unshare(CLONE_NEWNS),
    # then each dir's fresh tmpfs, in the order of ``mounts``.
    enter: Callable[[], None]
    fresh: tuple[Callable[[], None], ...]


def renewal(dirs: tuple[str, ...], file_size_mb: int, base: str) -> Renewal:
    """The plan for ``renew``: the worker's writable ``dirs`` that get a fresh tmpfs, with the
    view's mounts inside them (``NESTED``) that are moved aside meanwhile, and the dirs to make
    for work dirs in ``base``."""
    tops = [p for p in NESTED if not any(_within(p, q) and p != q for q in NESTED)]
    holding = [d for d in dirs if not any(_within(p, d) for p in tops)]
    mounts = []
    for d in sorted(dirs, key=lambda d: d not in holding):  # the dirs that can hold mounts first
        inside = [p for p in tops if _within(p, d)]
        if inside and not holding:
            continue  # nowhere to hold them: this dir stays the worker's (docs/sandbox.md)
        held = tuple((p, f"{holding[0]}/.held-{k}", os.path.isdir(p)) for k, p in enumerate(inside))
        mounts.append((d, held))
    parents: list[str] = []
    renewed = [d for d, _ in mounts]
    path = base
    while any(_within(path, d) and path != d for d in renewed):
        parents.insert(0, path)
        path = os.path.dirname(path)
    size = max(64, 4 * file_size_mb)
    data = f"size={size}m,nr_inodes=4096,mode=1777".encode()
    fresh = tuple(oslevel.mount_call(b"tmpfs", d, b"tmpfs", _FLAGS, data) for d, _ in mounts)
    return Renewal(tuple(mounts), data, tuple(parents), oslevel.unshare_call(oslevel.CLONE_NEWNS), fresh)


def renew(plan: Renewal, workdir: str, uid: int | None) -> None:
    """In a child, before it drops privileges: a mount namespace of its own with a fresh tmpfs
    on each of the worker's writable dirs and its work dir made again inside.

    They were one tmpfs each for all the worker's candidates, emptied after each, and a tmpfs
    numbers inodes from a counter that only grows: a candidate made files until the next
    number was its message, the next one read it off its work dir's inode.  The zygote's own
    work dir stays as it was (empty); the child's files go with its mount namespace.  The
    view's mounts inside such a dir (a runtime or package in a venv under /tmp) are moved
    aside while it gets its fresh tmpfs and then back, so that dir is renewed too.
    """
    plan.enter()
    for (_, held), mount in zip(plan.mounts, plan.fresh, strict=True):
        for path, spot, is_dir in held:
            _make_spot(spot, is_dir)
            oslevel.mount(path, spot, None, oslevel.MS_MOVE, None)
        mount()
        if held:
            umask = os.umask(0o022)  # the forker's umask would make the way to them root's alone
            try:
                for path, spot, is_dir in held:
                    _make_spot(path, is_dir)
                    oslevel.mount(spot, path, None, oslevel.MS_MOVE, None)
                    (os.rmdir if is_dir else os.unlink)(spot)
            finally:
                os.umask(umask)
    if plan.parents:
        for parent in plan.parents:
            with contextlib.suppress(FileExistsError):
                os.mkdir(parent, 0o711)
            os.chmod(parent, 0o711)  # the umask may have taken bits
        os.mkdir(workdir, 0o700)
        if uid is not None:
            os.chown(workdir, uid, uid)


def _make_spot(path: str, is_dir: bool) -> None:
    """An empty dir or file at ``path`` (a mount point), its parents made as the view makes them."""
    if is_dir:
        os.makedirs(path, 0o755, exist_ok=True)
        return
    os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o444))


def _copy_of(scratch: str, trees: list[str], masks: list[str]) -> str:
    """A tmpfs holding private copies of what the view shows, at their own paths (viewcopy.py)."""
    store = tempfile.mkdtemp(prefix="files-", dir=scratch)
    oslevel.mount("tmpfs", store, "tmpfs", _FLAGS, "mode=755")
    copier = viewcopy.Copier(store, masks)
    for tree in trees:
        copier.tree(tree)
    copier.libraries()
    viewcopy.populate_mappings()
    return store


def _bind_readonly(source: str, target: str, device: bool = False) -> None:
    if os.path.isdir(source):
        os.makedirs(target, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o444))
    oslevel.mount(source, target, None, oslevel.MS_BIND | oslevel.MS_REC, None)
    # Read-only takes a remount; keep the flags the kernel locks in a user namespace.
    locked = os.statvfs(target).f_flag
    flags = oslevel.MS_REMOUNT | oslevel.MS_BIND | oslevel.MS_RDONLY | oslevel.MS_NOSUID
    flags |= 0 if device else oslevel.MS_NODEV
    flags |= sum(ms for st, ms in _ST_TO_MS if locked & st)
    oslevel.mount("none", target, None, flags, None)


def _copy_file(source: str, target: str) -> None:
    """A copy of ``source`` (its bytes and mode) at ``target``, its parents made as the view
    makes them (the view's root is made read-only after)."""
    os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
    with open(source, "rb") as f:
        data, mode = f.read(), stat.S_IMODE(os.fstat(f.fileno()).st_mode)
    fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _make_dev(root: str, file_size_mb: int) -> None:
    """``/dev``: the five devices, ``fd`` and the std links, a private ``shm``.

    As root each device is a node of its own (``mknod``, the host's numbers and mode) on the
    ``/dev`` tmpfs, read-only once made; where that is refused (a user namespace: its tmpfs
    takes no device) a read-only bind of the host's node. A bind was a mount that every child's
    mount namespace copied at its ``unshare`` and dropped at its exit: five of the view's 20.
    """
    dev = root + "/dev"
    os.makedirs(dev, 0o755)
    oslevel.mount("tmpfs", dev, "tmpfs", oslevel.MS_NOSUID | oslevel.MS_NOEXEC, "size=64k,nr_inodes=64,mode=755")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            host = os.stat(f"/dev/{name}")
            try:
                if not stat.S_ISCHR(host.st_mode):
                    raise OSError(f"/dev/{name} is not a character device")
                os.mknod(f"{dev}/{name}", host.st_mode, host.st_rdev)
                os.chmod(f"{dev}/{name}", stat.S_IMODE(host.st_mode))  # the umask took bits
            except OSError:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{dev}/{name}")
                _bind_readonly(f"/dev/{name}", f"{dev}/{name}", device=True)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(dev + "/shm")
    size = max(64, 4 * file_size_mb)
    oslevel.mount("tmpfs", dev + "/shm", "tmpfs", _FLAGS, f"size={size}m,nr_inodes=4096,mode=1777")
    oslevel.mount("none", dev, None, oslevel.MS_REMOUNT | oslevel.MS_RDONLY | oslevel.MS_NOSUID
                  | oslevel.MS_NOEXEC, None)
