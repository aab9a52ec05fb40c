"""A seccomp filter of the worker's own, installed before any untrusted code runs.

The sandboxes differ in what they filter: Docker applies its default seccomp profile, which
still allows ``ptrace`` and ``process_vm_readv``/``writev`` (so a submission could read or
patch another process of its container), while bwrap and local install no filter at all. So
the worker installs one itself, on top of whatever the sandbox has (filters stack: the
strictest answer wins), before it imports the submission; script mode runs its script
through ``python -m sandbox.confine -- CMD...``, which installs the same filter and execs.

The filter is classic BPF, built here with ctypes (no libseccomp in the image or the venv),
set with ``PR_SET_NO_NEW_PRIVS`` and ``seccomp(SECCOMP_SET_MODE_FILTER,
SECCOMP_FILTER_FLAG_TSYNC)`` so that every thread of the process has it, and inherited by
every child across fork and exec. It answers EPERM to the syscalls that reach into another
process's memory or files (``ptrace``, ``process_vm_readv``, ``process_vm_writev``,
``pidfd_getfd``), and to every syscall made through a foreign ABI (a filter keyed on x86_64
numbers means nothing for an ``int 0x80`` i386 call or an x32 one, whose numbers differ):
only the native ABI of x86_64 (without the x32 bit) or aarch64 gets through.

:func:`install` never raises: it returns what happened, and the worker sends that in its
hello (``seccomp``), which the supervisor records as ``run.probes["seccomp"]``. A kernel
without seccomp is ``unsupported``; a kernel that has it but refused the filter is
``failed``, which is never silent: the worker reports it and ``sandbox.confine`` refuses to
run the command (exit :data:`EXIT_FAILED`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_GET_SECCOMP = 21
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1

SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

# BPF opcodes (linux/bpf_common.h)
_LD_W_ABS = 0x00 | 0x00 | 0x20       # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x05 | 0x10 | 0x00          # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x05 | 0x30 | 0x00          # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06 | 0x00                 # BPF_RET | BPF_K

_OFFSET_NR, _OFFSET_ARCH = 0, 4      # struct seccomp_data: int nr; __u32 arch; ...

# name -> (x86_64 number, aarch64 number)
DENIED = {
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "pidfd_getfd": (438, 438),
}
_SECCOMP_SYSCALL = {"x86_64": 317, "aarch64": 277}

EXIT_FAILED = 126   # sandbox.confine could not install the filter on a kernel that has seccomp


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def _arch_block(numbers: list[int], deny_x32: bool) -> list[tuple[int, int, int, int]]:
    """Instructions for one ABI: load nr, deny the listed numbers (and x32), else allow."""
    deny = SECCOMP_RET_ERRNO | errno.EPERM
    body = [(_LD_W_ABS, 0, 0, _OFFSET_NR)]
    if deny_x32:
        body.append((_JGE_K, len(numbers) + 1, 0, X32_SYSCALL_BIT))   # -> the deny at the end
    for i, nr in enumerate(numbers):
        body.append((_JEQ_K, len(numbers) - i, 0, nr))                # -> the deny at the end
    body += [(_RET_K, 0, 0, SECCOMP_RET_ALLOW), (_RET_K, 0, 0, deny)]
    return body


def program() -> bytes:
    """The filter, as the kernel's ``struct sock_filter`` array."""
    x86 = _arch_block([nrs[0] for nrs in DENIED.values()], deny_x32=True)
    arm = _arch_block([nrs[1] for nrs in DENIED.values()], deny_x32=False)
    foreign = [(_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM)]
    head = [
        (_LD_W_ABS, 0, 0, _OFFSET_ARCH),
        (_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),              # -> x86 block (after the next jump)
        (_JEQ_K, len(x86) + 1, len(x86), AUDIT_ARCH_AARCH64),   # -> arm block, else -> foreign
    ]
    insns = head + x86 + foreign + arm
    # head[2]'s jf lands on `foreign` (right after x86), jt on `arm` (after foreign)
    return b"".join(_insn(*i) for i in insns)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _status(status: str, detail: str) -> dict:
    return {"status": status, "detail": detail[:300]}


def install() -> dict:
    """Install the filter on every thread of this process; what happened, never an exception.

    ``{"status": "installed" | "unsupported" | "failed", "detail": ...}``
    """
    machine = platform.machine()
    if machine not in _SECCOMP_SYSCALL:
        return _status("unsupported", f"no filter for this machine ({machine})")
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError as exc:
        return _status("failed", f"cannot load libc: {exc}")
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 and ctypes.get_errno() == errno.EINVAL:
        return _status("unsupported", "the kernel has no seccomp (PR_GET_SECCOMP: EINVAL)")
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return _status("failed", f"PR_SET_NO_NEW_PRIVS: {os.strerror(ctypes.get_errno())}")
    code = program()
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = _SockFprog(len(code) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(ctypes.c_long(_SECCOMP_SYSCALL[machine]), ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
                      ctypes.c_uint(SECCOMP_FILTER_FLAG_TSYNC), ctypes.byref(fprog))
    if rc == 0:
        return _status("installed", f"{machine}: EPERM for {', '.join(DENIED)} and foreign ABIs; every thread")
    if rc > 0:
        return _status("failed", f"thread {rc} could not be synchronized (TSYNC)")
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL) and libc.prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0:
        return _status("unsupported", f"seccomp(): {os.strerror(err)}")
    return _status("failed", f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(err)}")


def main(argv: list[str] | None = None) -> int:
    """``python -m sandbox.confine -- CMD...``: install the filter, then exec CMD."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m sandbox.confine -- CMD [ARG...]", file=sys.stderr)
        return 2
    result = install()
    if result["status"] == "failed":
        print(f"sandbox.confine: seccomp filter not installed: {result['detail']}", file=sys.stderr)
        return EXIT_FAILED
    if result["status"] == "unsupported":
        print(f"sandbox.confine: no seccomp filter: {result['detail']}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(args[0], args)
    except OSError as exc:
        print(f"sandbox.confine: cannot run {args[0]!r}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
