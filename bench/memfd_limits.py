"""What limits memfd pages when there is no cgroup: the sandbox child's rlimits alone.

A memfd's pages are in no address space until mapped, so RLIMIT_AS does not count them. This
probe sets the child's RLIMIT_FSIZE (16 MiB) and RLIMIT_NOFILE (256), drops to ``--uid`` (root
keeps CAP_SYS_RESOURCE, which lifts the in-flight limit) and prints what stops it: a file past
16 MiB, the open memfds, and memfds parked in flight in a unix socketpair (SCM_RIGHTS). It
allocates one page per memfd, not 16 MiB: the bound is the count times 16 MiB.

    sudo python3 bench/memfd_limits.py --uid 65534      (docs/sandbox.md, the memfd row)
"""

from __future__ import annotations

import argparse
import array
import errno
import os
import resource
import signal
import socket

MB = 1 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uid", type=int, default=None, help="drop to this uid (and gid) first")
    parser.add_argument("--rounds", type=int, default=50, help="messages of 200 fds to try to park")
    args = parser.parse_args()
    if args.uid is not None:
        os.setgroups([])
        os.setgid(args.uid)
        os.setuid(args.uid)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * MB, 16 * MB))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    fd = os.memfd_create("probe")
    for what, call in (("write past 16 MiB", lambda: os.pwrite(fd, b"x", 16 * MB)),
                       ("ftruncate to 17 MiB", lambda: os.ftruncate(fd, 17 * MB)),
                       ("fallocate 17 MiB", lambda: os.posix_fallocate(fd, 0, 17 * MB))):
        try:
            call()
            print(f"{what}: allowed")
        except OSError as exc:
            print(f"{what}: {errno.errorcode[exc.errno]}")
    os.close(fd)
    a, _b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    fds: list[int] = []
    try:
        while True:
            fds.append(os.memfd_create("p"))
            os.ftruncate(fds[-1], 4096)
    except OSError as exc:
        print(f"open memfds: {len(fds)}, then {errno.errorcode[exc.errno]}")
    for f in fds[:4]:
        os.close(f)
    fds = fds[4:]
    parked = 0
    try:
        for _ in range(args.rounds):
            chunk, fds = fds[:200], fds[200:]
            a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", chunk))])
            for f in chunk:
                os.close(f)
            parked += len(chunk)
            while len(fds) < 200:
                fds.append(os.memfd_create("p"))
                os.ftruncate(fds[-1], 4096)
        print(f"parked in flight: {parked}, all tried")
    except OSError as exc:
        print(f"parked in flight: {parked}, then {errno.errorcode[exc.errno]}")


if __name__ == "__main__":
    main()
