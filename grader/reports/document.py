"""``report.json``: the run's report, the contract users and outside tools rely on.

Built from the run's options, its task results and its provenance, and checked against
``schemas/report.schema.json`` before anyone sees it (DESIGN section 6). Every other
rendering (console, Markdown, HTML, JUnit) is made from this document alone.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from pathlib import Path

from grader import __version__, schemas
from grader.config import IntegrityConfig
from grader.record.folder import RunRecord
from grader.scores.aggregate import summarize
from grader.scores.result import TaskResult

REPORT_SCHEMA = "report.schema.json"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


def id_order(prompt_id: str):
    """Numeric ids in numeric order, then the others by name."""
    return (0, int(prompt_id), "") if prompt_id.isdigit() else (1, 0, prompt_id)


def thresholds(options: dict) -> dict:
    """Every threshold a verdict depended on: the quality gate's, the integrity checks', timing's."""
    quality, timing = options.get("quality") or {}, options.get("timing") or {}
    integrity = {**dataclasses.asdict(IntegrityConfig()), **(options.get("integrity") or {})}
    return {
        "clip_tolerance": quality.get("clip_tolerance"), "ssim_tolerance": quality.get("ssim_tolerance"),
        "psnr_tolerance_db": quality.get("psnr_tolerance_db"),
        "self_report_tolerance": integrity.pop("self_report_tolerance"), "target_rel_ci": timing.get("target_rel_ci"),
        **integrity,
        "load_cap_factor": timing.get("load_cap_factor"), "idle_grace_seconds": timing.get("idle_grace_seconds"),
        "idle_window_seconds": timing.get("idle_window_seconds"),
    }


def build(options: dict, tasks: list[dict], *, run_seed: int, started: float, finished: float, version: str,
          environment: dict | None = None, extra: dict | None = None) -> dict:
    """The report document from ``GradeConfig.as_dict()`` (as ``run.json`` stores it) and task entries.

    ``environment`` is the grading machine's provenance recorded when the run started
    (``grader.record.provenance.collect_environment``); without it, this machine's is used.
    ``extra`` adds provenance fields (attempts, reused tasks, a rescore's record).
    """
    from grader.isolation import provider

    if environment is None:
        from grader.record.provenance import collect_environment

        environment = collect_environment(options)
    machine = dict(environment.get("machine") or {})
    try:
        isolated = bool(provider(options["sandbox"]).isolated)
    except Exception:  # noqa: BLE001 - a provider that no longer loads here: go by name
        isolated = options["sandbox"] == "docker"
    image = environment.get("image") or {}
    doc = {
        "schema_version": 1,
        "run_id": options.get("run_id") or Path(options["out"]).name,
        "provenance": {
            "grader_version": version, "git_commit": environment.get("git_commit"), "started_at": iso(started),
            "finished_at": iso(finished), "sandbox": options["sandbox"], "isolated": isolated,
            "run_seed": run_seed, "libraries": environment.get("libraries") or {}, "machine": machine,
            "gpu": machine.get("gpu"), "driver": machine.get("driver"),
            "image_digest": image.get("digest"), "image": image or None,
            "sandbox_runtime": environment.get("sandbox_runtime"),
            "options": options, **(extra or {}),
        },
        "thresholds": thresholds(options),
        "tasks": sorted(tasks, key=lambda t: id_order(t["prompt_id"])),
        "summary": summarize(tasks),
    }
    return schemas.validate(REPORT_SCHEMA, doc, source="report.json")


def build_report(record: RunRecord, results: list[TaskResult], extra_provenance: dict | None = None) -> dict:
    """The report of a run from its run record and stored results (grade, report, rescore)."""
    attempts = record.doc.get("attempts") or []
    provenance = {"attempts": len(attempts),
                  "reused_tasks": sorted(attempts[-1].get("reused", []), key=id_order) if attempts else [],
                  "complete": {r.prompt_id for r in results} >= set(record.doc.get("task_ids", []))}
    rescores = record.doc.get("rescores") or []
    if rescores:
        last = rescores[-1]
        provenance["rescored"] = {"at": iso(last["at"]), "previous_thresholds": last["previous"],
                                  "changed": last["changed"], "times": len(rescores)}
    provenance.update(extra_provenance or {})
    return build(record.options, [r.to_dict() for r in results], run_seed=record.run_seed, started=record.started,
                 finished=record.finished or time.time(), version=record.doc.get("grader_version", __version__),
                 environment=record.doc.get("environment"), extra=provenance)
