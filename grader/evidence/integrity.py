"""Integrity checks: evidence that a speedup was gamed rather than earned.

Each check compares the experiment's behaviour with the GT's under the same probes,
so that what an honest pipeline does on this machine (GPU nondeterminism, thread
spin-down, a text-embedding cache) is not mistaken for a trick. A check yields a
flag and a line of evidence; flags of kind ``tamper`` (grader.evidence.flags) make the task
``tampered``, the others are advisory and leave the status alone.
"""

from __future__ import annotations

from collections import Counter

from grader.config import IntegrityConfig
from grader.runs.variant import TRUSTED_VARIANTS, VariantRun

SAME_PIXELS = 0.5   # share of exactly equal pixels above which two renders are one image touched up


def interference(runs: dict[str, VariantRun], cfg: IntegrityConfig) -> list[str]:
    """Evidence that a variant ran, or was tampered with, while another one was being timed.

    Every variant is frozen outside its own turns, so it should show no CPU time then; the
    trusted variants' (reference, GT) nice values and CPU sets must stay as the grader set
    them, and on a GPU their batches must find the device quiet.
    """
    lines = []
    for name, run in runs.items():
        p = run.probes
        if p.get("frozen_cpu_max", 0.0) > cfg.frozen_cpu:
            lines.append(f"{name} used {p['frozen_cpu_max']:.2f} CPU-s in one spell while frozen "
                         f"({p.get('frozen_cpu_seconds', 0.0):.2f} in all; allowed {cfg.frozen_cpu:g})")
        if name not in TRUSTED_VARIANTS:
            continue
        for change in p.get("sched_changes") or []:
            lines.append(f"{name}'s worker was reprioritized: {change}")
        if p.get("quiet_timeouts"):
            lines.append(f"the device was still busy with other work before {p['quiet_timeouts']} of {name}'s batches "
                         f"(waited up to {p.get('quiet_wait_max', 0.0):.1f} s each)")
        for user in p.get("gpu_shared_with") or []:
            lines.append(f"during {name}'s batch {user['batch']}, {user['variant']}'s process used the GPU "
                         f"({user['samples']} NVML sample(s), up to {user['max_sm']}% SM)")
    return lines


def check(runs: dict[str, VariantRun], manifest_speedup: float, cfg: IntegrityConfig) -> dict[str, str]:
    """Flags with evidence for one task whose variants all ran."""
    exp, gt = runs["experiment"], runs["gt"]
    found: dict[str, str] = {}
    lines = interference(runs, cfg)
    if lines:
        found["interference"] = "; ".join(lines[:5]) + (f"; and {len(lines) - 5} more" if len(lines) > 5 else "")
    ep, gp = exp.probes, gt.probes
    if "repeat_ratio" in ep and "repeat_ratio" in gp:
        if ep["repeat_ratio"] < cfg.cache_ratio and gp["repeat_ratio"] >= cfg.cache_ratio:
            found["cross_call_cache"] = (f"a repeated batch took {ep['repeat_ratio']:.0%} of a fresh one's time per image "
                                         f"(GT: {gp['repeat_ratio']:.0%})")
        if ep["new_seed_psnr"] >= cfg.identical_db and gp["new_seed_psnr"] < cfg.different_db:
            found["ignores_seed"] = f"new seeds gave the same images (PSNR {ep['new_seed_psnr']:.1f} dB; GT {gp['new_seed_psnr']:.1f} dB)"
        if ep["repeat_psnr"] < cfg.different_db and gp["repeat_psnr"] >= cfg.identical_db:
            found["nondeterministic"] = f"the same prompts and seeds gave other images (PSNR {ep['repeat_psnr']:.1f} dB)"
        e_same, g_same = ep.get("new_prompt_same_pixels"), gp.get("new_prompt_same_pixels")
        if e_same is not None and (e_same > SAME_PIXELS or ep["new_prompt_psnr"] >= cfg.identical_db) \
                and (g_same or 0.0) <= SAME_PIXELS and gp.get("new_prompt_psnr", 0.0) < cfg.identical_db:
            found["ignores_prompt"] = (f"new prompts with the seeds of a timed batch gave the same images "
                                       f"({e_same:.0%} of pixels identical, PSNR {ep['new_prompt_psnr']:.1f} dB; "
                                       f"GT {(g_same or 0.0):.0%}, {gp.get('new_prompt_psnr', 0.0):.1f} dB)")
        e_idle, g_idle = ep.get("idle_cpu_fraction"), gp.get("idle_cpu_fraction")
        if e_idle is not None and e_idle > cfg.idle_cpu and (g_idle is None or g_idle < cfg.idle_cpu):
            found["background_work"] = f"the worker used {e_idle:.2f} CPU-s per second while idle after answering (GT {g_idle})"
    timed = [d for label, ds in exp.digests.items() if label.startswith("b") for d in ds]
    repeats = [d for d, n in Counter(timed).items() if n > 1]
    if repeats:
        found["recycled_images"] = f"{len(repeats)} image(s) returned more than once for different prompts or seeds"
    # Timing flags compare interval bounds, not point medians: a flag must hold even at the
    # end of each interval most favourable to the submission, so noise cannot raise one.
    et, gt_t = exp.timing, gt.timing
    beyond = gt_t.per_image_ci_low / et.per_image_ci_high
    if beyond > cfg.implausible_factor * max(manifest_speedup, 1.0):
        found["implausible_speedup"] = (f"{gt_t.per_image_median / et.per_image_median:.2f}x faster than the GT "
                                        f"(at least {beyond:.2f}x within the 95% intervals); flagged for review")
    return found
