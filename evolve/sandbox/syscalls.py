"""The seccomp filter: system calls no heuristic needs are refused with EPERM.

Built once in the zygote with libseccomp (through ``pyseccomp``, a ctypes
binding with the API of libseccomp's own Python module): the library knows
every architecture's syscall numbers and writes a filter that also kills
calls made through a foreign ABI (32-bit ``int 0x80``, x32).  The zygote
exports it as raw BPF; each child installs those bytes with one ``prctl``
after dropping privileges, before its work order is read.

Refused: new namespaces (``unshare``, ``setns``, ``clone`` with a namespace
flag; ``clone3`` answers ENOSYS so libc falls back to ``clone``), mounts and
root changes, ``ptrace`` and cross-process memory access, keyrings, ``bpf``,
perf events, ``userfaultfd``, ``io_uring``, modules, ``kexec``, reboot, swap,
clock and host name changes, ``execve``/``execveat`` (a heuristic never starts
a program: no shell, no ``git``), file handles, file locks and inotify/dnotify (channels
between candidates through the shared files of the view), ``sysinfo`` (the machine's free and
shared memory and load: a channel between concurrent candidates), ``kill(-1)``, sockets of
any family but ``AF_UNIX`` (``AF_VSOCK`` reaches the hypervisor's host from any network namespace),
and for candidates any new socket, socketpair or pipe (the machine's inode counter for them is a
channel between candidates), pidfds, System V objects and mount ids (the machine's pid and mount
counters, which a candidate moved through the zygote, were another) and ``memfd_create`` (memory
outside every limit but the cgroup's); AIO, POSIX message queues and ``mmap`` with MAP_HUGETLB (more
numbers from that inode counter) and ``ustat`` (every file system's free space by device number);
and every call from 459 on answers ENOSYS (``newer_calls_program``: calls newer than libseccomp knows).

Two stacked filters make that set: all but ``ZYGOTE_NEEDS`` is installed once in
the zygote itself after its set-up (it needs none of it again, and children
inherit it with the fork), and each child adds the short rest. The kernel builds
(and JIT-compiles) a filter at every load: a tenth of the instructions cost each
child about a third of the whole filter's ~170 us.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import socket
import struct
from dataclasses import dataclass
from typing import Any

DENIED = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "mount_setattr", "move_mount",
    "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "syslog", "acct", "quotactl", "vhangup", "lookup_dcookie",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
    "iopl", "ioperm", "modify_ldt", "open_by_handle_at", "name_to_handle_at", "fanotify_init",
    "execve", "execveat", "uselib", "nfsservctl",
    # Channels between candidates through the view's shared files: a lock one holds on a file
    # in /usr, or an inotify event when one opens or reads a file there, is seen by another
    # candidate running at the same time in another sandbox (tested with flock).
    "flock", "inotify_init", "inotify_init1", "inotify_add_watch",
    # The machine's memory and load as numbers between concurrent candidates: one that filled its
    # private /dev/shm (a tmpfs) with 45 MiB or not per 0.1 s slot moved sysinfo()'s sharedram for
    # a candidate of another worker, which read 68 of 80 bits right at load 9 (freeram and the
    # load averages carry the same, more noisily). There is no /proc/meminfo or /proc/loadavg.
    "sysinfo",
    # Counters of the whole kernel a candidate moved for the next one (fifteenth red team; below,
    # CANDIDATE_DENIED): pipes (inode numbers) and System V objects (the zygote's forks and mounts).
    # Here, in the zygote's own filter, which it never needs again and every child inherits: each
    # child's own filter is built and loaded per candidate (~2 us an instruction).
    "pipe", "pipe2", "shmget", "semget", "msgget",
    # More calls that take a number from that inode counter, made or refused (sixteenth red team): an
    # AIO context (its ring is an anonymous file), a POSIX message queue (its inode is made before
    # RLIMIT_MSGQUEUE refuses it) and mmap with MAP_HUGETLB (below: a file on the kernel's hugetlbfs,
    # made before ENOMEM). With io_setup a sender put 4 bits in the next candidate's fd 3 inode, 16 of
    # 20 at load 6.6. io_setup also shows the machine's AIO events in use (aio-nr) to the event, and
    # ustat(dev) any file system's free blocks and inodes by device number, in the view or not (other
    # sandboxes' private /tmp): channels between concurrent candidates, as sysinfo was.
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr", "ustat",
)
# mmap's flag (arg 3): 0x40000 on x86, arm, riscv, powerpc, s390 (asm-generic), not on mips, parisc or alpha
MAP_HUGETLB = {"mips": 0x80000, "mips64": 0x80000, "parisc": 0x80000, "parisc64": 0x80000,
               "alpha": 0x100000}.get(platform.machine(), 0x40000)
# fcntl commands refused for the same reason: F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK,
# F_OFD_SETLK, F_OFD_SETLKW (record locks) and F_NOTIFY (dnotify: DN_ACCESS reports reads).
LOCK_FCNTL = (5, 6, 7, 36, 37, 38, 1026)
# Sockets of any family but AF_UNIX (the sandbox's own channels are unix socketpairs): the network
# namespace is empty, but AF_VSOCK is not the network namespace's (it reaches the hypervisor's
# host: this VM's virtio vsock took a candidate's socket), AF_NETLINK, AF_ALG and the rest are
# kernel interface no heuristic needs, and without a network namespace AF_INET is the network.
SOCKET_CALLS = ("socket", "socketpair")
# And for candidates, no socket() at all: without a mount namespace (root without CAP_SYS_ADMIN, a
# user without user namespaces) the machine's unix sockets are in the file system (an ssh or gpg
# agent, a session bus, a container runtime's), and a new socket connects to one, as a datagram
# socketpair sends to one (sendto with a path; eleventh red team). No socketpair either (below);
# fd 3 is made by the zygote.
# And for candidates, no memfd: a memfd's pages are in no address space until mapped, so RLIMIT_AS
# does not see them; only the cgroup counts them. Without one (docs/sandbox.md, "Machines without
# cgroup controllers") a candidate as an unprivileged uid held 249 open memfds of 16 MiB
# (RLIMIT_FSIZE, RLIMIT_NOFILE) and parked 400 more in flight in a socketpair (SCM_RIGHTS,
# then ETOOMANYREFS): some 10 GiB against memory_mb 2048 (bench/memfd_limits.py). No heuristic needs one.
# And no pipe or socketpair: each takes inode numbers from the kernel's one counter for pipes and
# sockets (get_next_ino, the whole machine's), which a later candidate reads off any fd of its own
# (fd 3, made after the last candidate ended): a candidate made pipes until the counter's bits 12-15
# were its message, and the next read them, 16 of 16 4-bit messages at 0.1-0.3 s each (fifteenth red
# team; also from a run to its audit's fresh process). Nothing a candidate may call takes a number
# from that counter now (eventfd, timerfd, epoll share one inode; tmpfs numbers its own). No
# heuristic needs either (asyncio's event loop makes a socketpair: not available to candidates).
# And no pidfd_open: a pidfd's inode number is its pid's unique id, a counter of every process the
# machine made, and a candidate moves the zygote's count of forks by one bit: one that leaves a
# System V object makes it replace the IPC namespace and fork the next spare again, and the next
# candidate's pidfd read 5 more than the one before's instead of 3 (39 of 40 pairs read right at
# load 9.5; fifteenth red team). A candidate has no other use for one (it may signal only itself).
# And no System V IPC object: one left behind makes the zygote replace the IPC namespace (with its
# own internal mount) and fork the next spare again, and the next candidate saw that bit in the
# machine's mount ids (statx, STATX_MNT_ID_UNIQUE: a step of 73 from the sender's against 48, 40 of
# 40 read right by parity at load 7-8; fifteenth red team) as in its pids (above). No heuristic
# needs one (POSIX message queues are refused by RLIMIT_MSGQUEUE).
CANDIDATE_DENIED = ("memfd_create", "memfd_secret", "socketpair", "pidfd_open")  # the zygote uses the last two
# And no mount id, the reading of that channel: statx's STATX_MNT_ID (0x1000) and STATX_MNT_ID_UNIQUE
# (0x4000, a 64-bit counter of the whole machine), statmount and listmount (which libseccomp before
# 2.6 does not know by name: by number where it is 457 and 458, every architecture's table since
# Linux 5.1 but alpha's and mips's, which add offsets of their own; elsewhere the filter's
# description says they are not refused, and so do Sandbox.facts and evolve doctor). Whatever else a
# candidate may do to what the zygote does next (a crash, a timeout, a memory bomb), the next one
# cannot count the mounts it made. Python's os.stat calls fstatat, not statx. In the zygote's filter
# too (it reads no mount id).
STATX_MOUNT_BITS = (0x1000, 0x4000)
MOUNT_ID_CALLS = (("statmount", 457), ("listmount", 458))
SHARED_NUMBERS = ("x86_64", "aarch64", "riscv64", "ppc64le", "ppc64", "s390x", "loongarch64",
                  "armv7l", "armv8l", "armv6l", "i686", "i386")
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                   0x40000000, 0x00000080)  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
# What the zygote itself still calls after its set-up: a pid namespace per candidate
# (unshare, setns back), a fresh IPC namespace when one was used, kill(-1) as a
# candidate's uid (isolation.kill_uid); what a child does before its own filter: a mount
# namespace with fresh writable dirs (unshare, mount; view.renew). Refused to
# children by their own filter.
ZYGOTE_NEEDS = ("unshare", "setns", "mount")  # mount: each child's fresh writable dirs (view.py)
MINUS_ONE = ("kill", "pidfd_send_signal")  # refused with pid -1 only
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


# And every call from 459 on (Linux 6.8's lsm_get_self_attr and later) answers ENOSYS, as a kernel
# without it would: the filter refuses by name what its libseccomp knows (2.5.4 here: nothing past
# 456), and a call newer than that was allowed whatever it did (statmount and listmount were, until
# refused by number; on 6.18 also mseal, the *xattrat calls, open_tree_attr of the mount API,
# file_getattr; next listns, which lists the machine's namespaces). No heuristic needs one, and libc
# falls back on ENOSYS. A small filter of its own (a range of numbers, which libseccomp cannot
# write), stacked in the zygote; where the architecture is not x86_64's or aarch64's (the numbers
# are known for those) there is none, and the filter's description says so (sixteenth red team).
NEWER_FROM = 459
NEWER_TO = 1024  # beyond: x32's numbers (0x40000000 and up), which libseccomp's filter rules
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000


def newer_calls_program(machine: str) -> bytes | None:
    """BPF refusing syscalls ``NEWER_FROM`` to ``NEWER_TO`` - 1 with ENOSYS on ``machine``'s own ABI."""
    arch = AUDIT_ARCH.get(machine)
    if arch is None:
        return None
    load, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JGE|K, BPF_RET|K
    code = [(load, 0, 0, 4),  # seccomp_data.arch
            (jeq, 0, 4, arch),  # another ABI: allowed here (libseccomp's filter decides)
            (load, 0, 0, 0),  # seccomp_data.nr
            (jge, 0, 2, NEWER_FROM),
            (jge, 1, 0, NEWER_TO),
            (ret, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS),
            (ret, 0, 0, SECCOMP_RET_ALLOW)]
    return b"".join(struct.pack("=HBBI", *insn) for insn in code)


@dataclass(frozen=True)
class Programs:
    """The BPF programs: ``whole`` (everything, for a child of a zygote without a filter of
    its own), or ``zygote`` then ``child`` stacked; ``newer`` (calls newer than the filter
    knows, ENOSYS) stacked with either, None where the numbers are not known."""

    whole: bytes
    zygote: bytes
    child: bytes
    newer: bytes | None = None


def build() -> tuple[Programs | None, str]:
    """(BPF programs, what they refuse) or (None, why there are none)."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as exc:  # the module, or libseccomp.so.2 under it
        return None, f"no seccomp filter: {exc} (install libseccomp2 and pyseccomp)"
    try:
        refused, whole = _program(sc, DENIED, MINUS_ONE, namespaces=True, candidate=True)
        _, zygote = _program(sc, tuple(n for n in DENIED if n not in ZYGOTE_NEEDS), (), namespaces=True)
        _, child = _program(sc, ZYGOTE_NEEDS, MINUS_ONE, namespaces=False, candidate=True)
    except OSError as exc:
        return None, f"no seccomp filter: libseccomp failed ({exc})"
    unknown = [name for name, _ in MOUNT_ID_CALLS if not _knows(sc, name) and platform.machine() not in SHARED_NUMBERS]
    newer = newer_calls_program(platform.machine())
    return (Programs(whole, zygote, child, newer),
            f"seccomp filter (libseccomp): {refused} system calls refused, no namespaces, no exec, "
            "no new socket or pipe" + (f"; NOT refused: {' and '.join(unknown)} (mount ids: a counter of the "
                                       f"whole machine), unknown to this libseccomp on {platform.machine()}"
                                       if unknown else "")
            + (f"; calls from {NEWER_FROM} on: ENOSYS" if newer is not None else
               f"; calls newer than this libseccomp knows are NOT refused on {platform.machine()}"))


def _knows(sc: Any, name: str) -> bool:
    try:
        return int(sc.resolve_syscall(sc.Arch.NATIVE, name)) >= 0
    except (OSError, ValueError, AttributeError):
        return False


def _program(sc: Any, denied: tuple[str, ...], minus_one: tuple[str, ...], namespaces: bool,
             candidate: bool = False) -> tuple[int, bytes]:
    """(calls refused, BPF bytes) of a filter refusing ``denied``, ``minus_one`` with pid -1,
    (``namespaces``: the zygote's) clone with a namespace flag, clone3 and mount ids, and (``candidate``) every
    ``socket`` and what ``CANDIDATE_DENIED`` names."""
    filt = sc.SyscallFilter(sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    refused = 0
    for name in denied:
        refused += _rule(sc, filt, eperm, name)
    if namespaces:
        for flag in NAMESPACE_FLAGS:
            _rule(sc, filt, eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        _rule(sc, filt, sc.ERRNO(errno.ENOSYS), "clone3")  # its flags are behind a pointer
        for cmd in LOCK_FCNTL:
            _rule(sc, filt, eperm, "fcntl", sc.Arg(1, sc.EQ, cmd))
        for name in SOCKET_CALLS:
            _rule(sc, filt, eperm, name, sc.Arg(0, sc.NE, socket.AF_UNIX))
        for name in ("mmap", "mmap2"):
            _rule(sc, filt, eperm, name, sc.Arg(3, sc.MASKED_EQ, MAP_HUGETLB, MAP_HUGETLB))
        for bit in STATX_MOUNT_BITS:
            _rule(sc, filt, eperm, "statx", sc.Arg(3, sc.MASKED_EQ, bit, bit))
        for name, number in MOUNT_ID_CALLS:
            known = _rule(sc, filt, eperm, name)
            if not known and platform.machine() in SHARED_NUMBERS:
                known = _rule(sc, filt, eperm, number)
            refused += known
    if candidate:
        for name in CANDIDATE_DENIED:
            refused += _rule(sc, filt, eperm, name)
        _rule(sc, filt, eperm, "socket")
    low32 = 0xFFFFFFFF  # kill(-1): every process we may signal
    for name in minus_one:
        _rule(sc, filt, eperm, name, sc.Arg(0, sc.MASKED_EQ, low32, low32))
    fd = os.memfd_create("seccomp-bpf")
    try:
        with os.fdopen(os.dup(fd), "wb") as f:
            filt.export_bpf(f)
        return refused, os.pread(fd, 1 << 20, 0)
    finally:
        os.close(fd)


def _rule(sc: Any, filt: Any, action: int, name: str | int, *args: Any) -> int:
    try:
        filt.add_rule(action, name, *args)
    except (OSError, ValueError):  # a call this architecture does not have
        return 0
    return 1


class Filter:
    """A BPF program ready to load: the ctypes objects are built once, in the zygote,
    so that each child pays only the ``prctl`` (about 0.1 ms less per child)."""

    def __init__(self, program: bytes, then: bytes | None = None) -> None:
        self.program = program
        self._then = Filter(then) if then is not None else None  # stacked after it
        self._buf = ctypes.create_string_buffer(program, len(program))
        self._prog = _SockFprog(len(program) // 8, ctypes.cast(self._buf, ctypes.c_void_p))
        self._prctl = ctypes.CDLL(None, use_errno=True).prctl
        self._args = (ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER),
                      ctypes.byref(self._prog), ctypes.c_ulong(0), ctypes.c_ulong(0))

    def install(self) -> None:
        """Load the filter into this process (after PR_SET_NO_NEW_PRIVS); it is inherited."""
        if self._prctl(*self._args) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"seccomp: {os.strerror(err)}")
        if self._then is not None:
            self._then.install()


def install(program: bytes) -> None:
    """Load ``program`` into this process (after PR_SET_NO_NEW_PRIVS); it is inherited."""
    Filter(program).install()



