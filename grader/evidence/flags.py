"""Every flag the grader can raise, what kind it is and what it means: the one catalogue.

A flag is a short snake_case name on a task (``flags[]`` in ``report.json``); a
baseline's or GT's own flags carry the variant's name in front (``baseline_timer_mismatch``).
Each has a kind:

- ``tamper``: evidence of gaming rather than of a weak optimization; on the experiment it
  turns an otherwise graded task into ``tampered``;
- ``grader``: the grader, the benchmark or the machine failed, not the submission (junit
  reports these as errors, not failures);
- ``advisory``: everything else; it leaves the status alone and points a reviewer at a line
  of evidence.

Stages raise flags by name; reports learn what a name means from :func:`flag_evidence`, and
a test checks that every name the code raises is listed here.
"""

from __future__ import annotations

from dataclasses import dataclass

from grader.runs.variant import VARIANTS

TAMPER, GRADER, ADVISORY = "tamper", "grader", "advisory"
VARIANT_PREFIXES = tuple(v for v in VARIANTS if v != "experiment")  # the experiment's flags go bare


@dataclass(frozen=True)
class Flag:
    name: str
    kind: str
    text: str


_CATALOGUE = (
    # runtime integrity (grader.evidence.runtime, .integrity) and the protocol (grader.runs)
    Flag("timer_mismatch", TAMPER, "the worker's own clock disagrees with the supervisor's"),
    Flag("protocol_violation", TAMPER, "the worker broke the request/answer protocol"),
    Flag("cross_call_cache", TAMPER, "a repeated batch was much faster than the fastest fresh one"),
    Flag("ignores_seed", TAMPER, "new seeds gave the same images"),
    Flag("ignores_prompt", TAMPER, "images with one seed and different prompts were identical"),
    Flag("recycled_images", TAMPER, "an image was returned more than once for different prompts or seeds"),
    Flag("background_work", TAMPER, "the worker kept using CPU while idle after answering"),
    Flag("images_altered", TAMPER, "the images stored for the gate are not the ones the variants answered"),
    Flag("interference", TAMPER, "a variant ran, or reprioritized or slowed another, while another variant was timed"),
    Flag("nondeterministic", ADVISORY, "the same prompts and seeds gave other images"),
    Flag("baseline_sandbagged", ADVISORY, "the agent's baseline is slower than the reference baseline beyond the "
                                          "tolerance (the headline speedup is measured against the reference)"),
    Flag("implausible_speedup", ADVISORY, "far faster than the GT; flagged for review"),
    Flag("gpu_throttled", ADVISORY, "the GPU slowed down for heat or power while batches were timed"),
    Flag("load_cap_exceeded", ADVISORY, "loading took longer than the cap derived from the GT's load time"),
    Flag("wrong_image_count", ADVISORY, "a batch returned another number of images than prompts"),
    Flag("wrong_image_size", ADVISORY, "image sizes differed within a batch or changed between batches"),
    Flag("bad_image", ADVISORY, "an answered image was missing, unreadable or not HxWx3 uint8"),
    Flag("unclean_exit", ADVISORY, "the worker did not answer the stop request cleanly"),
    Flag("output_truncated", ADVISORY, "the worker wrote more output than the grader keeps; the tail was cut"),
    # scores and claims
    Flag("self_report_mismatch", ADVISORY, "the metrics file's speedup is far from the measured one"),
    Flag("self_reported", ADVISORY, "script mode: the experiment has no load_pipeline, so its numbers are the "
                                    "script's own and stay out of the measured aggregates"),
    Flag("quality_incomparable", ADVISORY, "the variants' images could not be compared"),
    Flag("baseline_failed", ADVISORY, "the agent's baseline failed"),
    # the grader's side
    Flag("gt_failed", GRADER, "the GT failed"),
    Flag("reference_failed", GRADER, "the reference baseline failed"),
    Flag("no_reference", GRADER, "the task's reference baseline could not be read"),
    Flag("no_model", GRADER, "no diffusers folder for this task's model under --model-dir"),
    Flag("invalid_manifest_entry", GRADER, "the manifest entry failed validation"),
    Flag("grader_error", GRADER, "the grader itself failed on this task (a grader bug, not the submission's fault)"),
    Flag("ray_task_failed", GRADER, "the Ray task died on every attempt"),
    Flag("ray_retried", ADVISORY, "the Ray worker died and the task was graded again on a node"),
    # the static pass (grader.evidence.static_check): advisory, with line numbers as evidence
    Flag("static_patches_timer", ADVISORY, "static pass: patches a clock or synchronisation function"),
    Flag("static_touches_grader", ADVISORY, "static pass: imports the grader's or the worker's modules"),
    Flag("static_inspects_frames", ADVISORY, "static pass: walks the call stack or the heap"),
    Flag("static_spawns_work", ADVISORY, "static pass: starts threads, processes or executors"),
    Flag("static_signals_processes", ADVISORY, "static pass: signals or reprioritizes other processes"),
    Flag("static_native_code", ADVISORY, "static pass: calls native code (ctypes, cffi)"),
    Flag("static_network", ADVISORY, "static pass: uses sockets or HTTP clients"),
    Flag("static_dynamic_code", ADVISORY, "static pass: runs code it cannot see (exec, eval, computed imports)"),
    Flag("static_suspicious_path", ADVISORY, "static pass: names GT, task or run folders, or climbs out of its own"),
    Flag("static_cross_call_cache", ADVISORY, "static pass: fills a container that outlives a call with prompt-keyed data"),
    Flag("static_memoized_inference", ADVISORY, "static pass: memoizes inference or a function taking prompts"),
    Flag("static_sleep", ADVISORY, "static pass: sleeps"),
)
FLAGS: dict[str, Flag] = {f.name: f for f in _CATALOGUE}
TAMPER_FLAGS = frozenset(f.name for f in _CATALOGUE if f.kind == TAMPER)
GRADER_SIDE_FLAGS = frozenset(f.name for f in _CATALOGUE if f.kind == GRADER)


def split_flag(flag: str, variants: dict | None = None) -> tuple[str, str]:
    """``(variant, flag)`` of a task flag: a baseline's or GT's own flags carry the variant's
    name in front (``baseline_timer_mismatch``). Without ``variants`` any known prefix counts."""
    for name in VARIANT_PREFIXES:
        if flag.startswith(name + "_") and (variants is None or name in variants) and flag[len(name) + 1:] in FLAGS:
            return name, flag[len(name) + 1:]
    return "experiment", flag


def variant_flag(variant: str, flag: str) -> str:
    """The task-level name of a variant's own flag: the experiment's as is, the others' prefixed."""
    return flag if variant == "experiment" else f"{variant}_{flag}"


def flag_evidence(task: dict, flag: str) -> str:
    """What in a task's result backs ``flag`` (one line, for the HTML page and junit.xml)."""
    variants = task.get("variants") or {}
    variant, base = split_flag(flag, variants)
    v = variants.get(variant) or {}
    recorded = (v.get("evidence") or {}).get(base) or (v.get("evidence") or {}).get(flag)
    if recorded:
        return f"{variant}: {recorded}"
    recorded = (task.get("evidence") or {}).get(flag)           # task-level checks (integrity, static, claims)
    if recorded:
        return str(recorded)
    if base == "self_report_mismatch":
        return (f"self-reported speedup {_num(task.get('self_reported_speedup'), '.2f', 'x')} vs measured "
                f"{_num(task.get('speedup'), '.2f', 'x')}: {_num(task.get('self_report_discrepancy'), '.0%')} apart")
    if base == "timer_mismatch":
        batches = [b for b in v.get("batches") or [] if b.get("seconds")]
        if batches:
            worst = max(batches, key=lambda b: abs(b["worker_seconds"] / b["seconds"] - 1))
            return (f"{variant}: the worker's own clock disagrees with the supervisor's; worst timed batch "
                    f"{worst['index']}: worker {worst['worker_seconds']:.4f}s vs supervisor {worst['seconds']:.4f}s")
    if base in ("gt_failed", "baseline_failed", "reference_failed"):
        failed = variants.get(base.split("_")[0]) or {}
        return f"{failed.get('status', '?')}: {failed.get('message') or task.get('message') or ''}".strip()
    entry = FLAGS.get(base)
    if entry is not None and (entry.kind == GRADER or base in ("self_reported", "output_truncated", "unclean_exit",
                                                                "quality_incomparable")):
        detail = task.get("message") if base in ("quality_incomparable", "invalid_manifest_entry", "no_model",
                                                  "grader_error") else ""
        return entry.text + (f": {detail}" if detail else "")
    if v.get("message"):
        return f"{variant}: {v['message']}"
    return task.get("message") or "no further evidence recorded"


def _num(value, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"
