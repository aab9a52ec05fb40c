"""``grader cleanup``: remove the containers and volumes that graders left behind.

The reaper covers a grader that dies; a crash of the host (or of the reaper) can still leave
labelled containers. :func:`cleanup` finds everything labelled ``sd-grader.managed=1`` whose
owning grader is gone (or, on request, every owner's) and removes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from grader.errors import SandboxInfraError
from grader.isolation.docker.engine import client, infra_call, translate
from grader.isolation.docker.reaper import MANAGED_LABEL, RUN_LABEL, owner_alive


@dataclass(frozen=True)
class Leftover:
    kind: str       # "container" or "volume"
    id: str
    name: str
    reason: str


def cleanup(all_owners: bool = False, dry_run: bool = False, run: str | None = None) -> list[Leftover]:
    """Remove containers and volumes labelled ``sd-grader.managed=1`` whose grader is gone.

    With ``all_owners`` also those of graders still running (and of other hosts); with
    ``run`` only those labelled ``sd-grader.run=<run>``, so one run's cleanup cannot touch
    another grading on the same engine. Returns what was (or, with ``dry_run``, would be) removed.
    """
    cl = client()
    removed: list[Leftover] = []
    label = [f"{MANAGED_LABEL}=1"] + ([f"{RUN_LABEL}={run}"] if run is not None else [])
    try:
        containers = cl.api.containers(all=True, filters={"label": label})
        volumes = (cl.api.volumes(filters={"label": label}) or {}).get("Volumes") or []
    except Exception as exc:  # noqa: BLE001
        raise translate("list", exc) from exc
    for c in containers:
        labels = c.get("Labels") or {}
        if not all_owners and owner_alive(labels):
            continue
        name = (c.get("Names") or ["?"])[0].lstrip("/")
        reason = "owner gone" if not owner_alive(labels) else "--all"
        if not dry_run:
            infra_call("remove", lambda cid=c["Id"]: cl.api.remove_container(cid, force=True, v=True))
        removed.append(Leftover("container", c["Id"], name, f"{reason}; run {labels.get(RUN_LABEL, '?')}, {c.get('State', '?')}"))
    for v in volumes:
        labels = v.get("Labels") or {}
        if not all_owners and owner_alive(labels):
            continue
        if not dry_run:
            try:
                infra_call("remove volume", lambda n=v["Name"]: cl.api.remove_volume(n, force=True))
            except SandboxInfraError:
                continue  # still in use
        removed.append(Leftover("volume", v["Name"], v["Name"], "owner gone" if not owner_alive(labels) else "--all"))
    return removed
