"""bwrap sandbox provider: each run in a bubblewrap sandbox (no daemon) with its own user, PID,
network, IPC and UTS namespaces, only the paths it needs bound in, as a non-root uid without
capabilities; :func:`unavailable_reason` says whether it works on this machine.
"""

from grader.isolation.bwrap.layout import MOUNT_ROOT, SANDBOX_GID, SANDBOX_UID, python_env
from grader.isolation.bwrap.process import BwrapExecResult, BwrapProcess
from grader.isolation.bwrap.provider import BWRAP_ENV, BwrapSandbox, bwrap_features, bwrap_path, unavailable_reason

__all__ = [
    "BWRAP_ENV", "MOUNT_ROOT", "SANDBOX_GID", "SANDBOX_UID", "BwrapExecResult", "BwrapProcess", "BwrapSandbox",
    "bwrap_features", "bwrap_path", "python_env", "unavailable_reason",
]
