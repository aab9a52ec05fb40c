"""The user namespace a bwrap sandbox runs in when the grader is root.

Run by root, ``bwrap --unshare-user --uid 10001`` maps the sandbox's uid 10001 to host uid 0:
the sandboxed code would own, on the host, every file root owns. So as root the provider makes
the user namespace itself, owned by :data:`~.layout.SANDBOX_UID`, with two mappings written by
root from outside (uid and gid 0 -> 0 and 10001 -> 10001), and a limit of zero user namespaces
inside it (bwrap's ``--disable-userns``, which needs ``--unshare-user``); bwrap, started as host
uid 10001, joins it with ``--userns``. Joining gives bwrap every capability in that namespace and
none outside it, enough to build the sandbox from host paths that 10001 could not open itself
(a root-owned ``0700`` parent such as ``/root`` or pytest's temporary folders: the capability
covers inodes whose owner is mapped, and root is). It then drops them all before the command
runs, which is host uid 10001 with no capabilities, as under Docker.

Why not ``--uid`` with bwrap's own namespace: as root it maps to root. Why not ``--userns`` with
bwrap started as root: bwrap switches uid before gid there and the gid switch then fails, and it
would set up the network without the capability it just dropped.
"""

from __future__ import annotations

import os
import subprocess
import sys

from grader.errors import SandboxUnavailable

CLONE_NEWUSER = 0x10000000
# Started as root (it must reach the interpreter), it becomes ``uid`` and unshares: the new
# namespace's owner is ``uid``. Then it waits for the maps, forbids nested user namespaces
# (CAP_SYS_RESOURCE in its own namespace allows that), and waits for the grader to let it go.
_HELPER = r"""
import ctypes, os, sys
uid, gid = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([])
os.setresgid(gid, gid, gid)
os.setresuid(uid, uid, uid)
if ctypes.CDLL(None, use_errno=True).unshare(%d) != 0:
    print("unshare failed:", os.strerror(ctypes.get_errno()), flush=True)
    sys.exit(1)
print("unshared", flush=True)
sys.stdin.readline()
with open("/proc/sys/user/max_user_namespaces", "w") as fh:
    fh.write("0")
print("ready", flush=True)
sys.stdin.read()
""" % CLONE_NEWUSER


def sandbox_userns(uid: int, gid: int, timeout: float = 30.0) -> int:
    """An fd of a fresh user namespace owned by ``uid`` (see the module docstring); the caller
    closes it. Raises :class:`SandboxUnavailable` when this kernel will not make one."""
    helper = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _HELPER, str(uid), str(gid)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, close_fds=True, cwd="/",
    )
    fd = -1
    try:
        line = helper.stdout.readline().strip()
        if line != "unshared":
            raise SandboxUnavailable(f"cannot create a user namespace for the bwrap sandbox: {line or helper.stderr.read()[-300:]}")
        for name, ident in (("uid_map", uid), ("gid_map", gid)):
            with open(f"/proc/{helper.pid}/{name}", "w") as fh:
                fh.write(f"0 0 1\n{ident} {ident} 1\n")
        fd = os.open(f"/proc/{helper.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        helper.stdin.write("go\n")
        helper.stdin.flush()
        line = helper.stdout.readline().strip()
        if line != "ready":
            raise SandboxUnavailable(f"cannot restrict the bwrap sandbox's user namespace: {helper.stderr.read()[-300:]}")
        return fd
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        raise SandboxUnavailable(f"cannot prepare a user namespace for the bwrap sandbox: {exc}") from exc
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise
    finally:
        try:
            helper.stdin.close()
        except OSError:
            pass
        try:
            helper.wait(timeout)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()
        helper.stdout.close()
        helper.stderr.close()
