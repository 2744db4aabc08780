"""Page-cache timing between candidates: one leaves bits in which pages of a file are cached,
a later one, in another sandbox (another ``evolve eval``), reads them back by timing reads.

The writer evicts the pages of a file nothing else reads (``posix_fadvise(DONTNEED)``) and
reads the pages of its 1 bits; the reader times a one-byte read of each page (a cached page
takes microseconds, one from disk tens to thousands).  Where the view's files were the
host's own (read-only binds of ``/usr`` and the runtime), 24 bits crossed exactly; on the
view's private copies every page is always in memory.  The second pair does the same with
the pages of a library the worker has mapped (numpy's OpenBLAS): the writer evicts through
the file, the reader faults the pages in through its own mapping of it.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from evolve.sandbox import Sandbox, SandboxLimits
from evolve.verifier import Instance

TESTS = Path(__file__).resolve().parent
LIMITS = SandboxLimits(timeout_s=20.0, memory_mb=512, file_size_mb=4, max_output_mb=1)
MESSAGE = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1]

# Both sides pick the same file the same way: the largest module of the stdlib that nobody
# imports (the C `_decimal` stands in for it), with a control that it can be read at all.
FILE_CHANNEL = '''
import os, time

PAGE = 4096


def target():
    return os.path.join(os.path.dirname(os.__file__), "_pydecimal.py")


def f(message):
    fd = os.open(target(), os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no readahead: one page per read
    if message is not None:  # the writer
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        for i, bit in enumerate(message):
            if bit:
                os.pread(fd, 1, (2 * i + 1) * PAGE)
        return "sent"
    micros = []  # the reader: one timed read of each bit's page
    for i in range(NBITS):
        start = time.perf_counter_ns()
        os.pread(fd, 1, (2 * i + 1) * PAGE)
        micros.append((time.perf_counter_ns() - start) / 1000)
    return micros
'''

# numpy's OpenBLAS is mapped by the worker before the candidate starts; the candidate finds
# its file next to numpy and its mapping in its own address space (dl_iterate_phdr).
MAPPING_CHANNEL = '''
import ctypes, os, time

PAGE = 4096


class PhdrInfo(ctypes.Structure):
    _fields_ = [("addr", ctypes.c_size_t), ("name", ctypes.c_char_p),
                ("phdr", ctypes.c_void_p), ("phnum", ctypes.c_uint16)]


class Phdr(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("offset", ctypes.c_uint64),
                ("vaddr", ctypes.c_uint64), ("paddr", ctypes.c_uint64), ("filesz", ctypes.c_uint64),
                ("memsz", ctypes.c_uint64), ("align", ctypes.c_uint64)]


def text_of_openblas():
    """(file path, address of its executable segment, its file offset, its length)."""
    found = []
    CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(PhdrInfo), ctypes.c_size_t, ctypes.c_void_p)

    def visit(info, size, data):
        name = info.contents.name.decode()
        if "openblas" in name:
            phdrs = ctypes.cast(info.contents.phdr, ctypes.POINTER(Phdr))
            for k in range(info.contents.phnum):
                ph = phdrs[k]
                if ph.type == 1 and ph.flags & 1:  # PT_LOAD, executable
                    found.append((name, info.contents.addr + ph.vaddr, ph.offset, ph.filesz))
        return 0

    ctypes.CDLL(None).dl_iterate_phdr(CALLBACK(visit), None)
    return found[0]


def f(message):
    path, addr, offset, length = text_of_openblas()
    first = (-addr) % PAGE + 64 * PAGE  # well inside the code, page aligned
    pages = [first + 512 * PAGE * i for i in range(NBITS)]  # 2 MiB apart: past read-around
    if message is not None:  # the writer: evict and load single pages through the file
        fd = os.open(path, os.O_RDONLY)  # raises where the file is not in the view
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        for page, bit in zip(pages, message):
            if bit:
                os.pread(fd, 1, offset + page)
        return "sent"
    micros = []  # the reader: needs no file, only its own mapping of the library
    for page in pages:
        start = time.perf_counter_ns()
        ctypes.string_at(addr + page, 1)
        micros.append((time.perf_counter_ns() - start) / 1000)
    return micros
'''


# A name looked up and not found is remembered (a negative dentry) on the host's file systems,
# by one kernel for every process: the writer looks up names of its 1 bits, the reader times
# the lookup of each (remembered: ~1.5 us, not: ~3 us here), against names it calibrates on.
DENTRY_CHANNEL = '''
import os, time


def took(name):
    start = time.perf_counter_ns()
    os.path.exists(name)
    return time.perf_counter_ns() - start


def f(hints):
    d = os.path.dirname(os.__file__)
    names = [[f"{d}/.bit-{hints['nonce']}-{i}-{k}" for k in range(3)] for i in range(NBITS)]
    if "message" in hints:  # the writer
        for group, bit in zip(names, hints["message"]):
            for name in group if bit else ():
                os.path.exists(name)
        return "sent"
    seen = f"{d}/.seen-{hints['nonce']}"
    for _ in range(100):
        took(seen)
    fresh = sorted(took(f"{d}/.fresh-{hints['nonce']}-{k}") for k in range(15))
    cached = sorted(took(seen) for _ in range(15))
    cut = (fresh[7] + cached[7]) / 2
    return [int(sum(took(name) < cut for name in group) >= 2) for group in names]
'''


def run(slot: int, source: str, message: object, bits: int) -> object:
    """One candidate in a sandbox of its own, as one ``evolve eval`` runs it."""
    program = textwrap.dedent(source).replace("NBITS", str(bits))
    with Sandbox("sandbox_fixtures:EchoVerifier", LIMITS, slot=slot, extra_sys_path=[str(TESTS)]) as sandbox:
        if not sandbox.facts["filesystem"][0]:
            pytest.skip(f"no filesystem view here: {sandbox.facts['filesystem'][1]}")
        outcome = sandbox.run(program, "f", [Instance("bits", "g", {"x": message})])
    assert outcome.status == "ok", outcome
    return outcome.runs[0].solution if outcome.runs[0].error is None else outcome.runs[0].error


def decode(micros: list[float]) -> list[int]:
    """What the reader concludes: a read under 40 us found its page cached (the writer's 1);
    from this VM's disk a page takes 60 us to milliseconds, from memory 1 to 15 us."""
    return [int(us < 40) for us in micros]


def agreement(received: list[int], sent: list[int]) -> float:
    """The share of bits received right: 1 is a channel.  Without a signal the page reads all
    look cached (0.5 right), and for the dentries' noise 0.8 of 48 comes by luck about once
    in 130,000 runs."""
    return sum(a == b for a, b in zip(received, sent, strict=True)) / len(sent)


@pytest.mark.parametrize(("source", "message"), [(FILE_CHANNEL, MESSAGE), (MAPPING_CHANNEL, MESSAGE[:8])],
                         ids=["file", "mapped library"])
def test_a_later_candidate_cannot_read_bits_left_in_the_page_cache(source: str, message: list[int]) -> None:
    sent = run(40, source, message, len(message))
    received = run(41, source, None, len(message))
    if source is FILE_CHANNEL:
        assert sent == "sent"  # the control: the file is there and can be read
    assert isinstance(received, list) and len(received) == len(message), received
    assert agreement(decode(received), message) < 0.8, (sent, received)


def test_a_later_candidate_cannot_read_bits_left_in_the_dentry_cache() -> None:
    nonce = os.urandom(8).hex()  # names no run looked up before
    message = MESSAGE * 2
    sent = run(40, DENTRY_CHANNEL, {"nonce": nonce, "message": message}, len(message))
    received = run(41, DENTRY_CHANNEL, {"nonce": nonce}, len(message))
    assert sent == "sent" and isinstance(received, list) and len(received) == len(message), received
    assert agreement(received, message) < 0.8, received  # 47 or 48 of 48 on the host's dentries
