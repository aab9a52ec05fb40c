"""``--set SECTION.NAME=VALUE``: every tunable of the typed configs is reachable, typed and
checked, and the report lists the thresholds a run used."""

from __future__ import annotations

import dataclasses
import time

import pytest

from grader.config import SECTIONS, IntegrityConfig, QualityConfig, TimingConfig, with_settings
from grader.errors import ConfigError
from grader.reports.document import build, thresholds

DEFAULTS = {"timing": TimingConfig(), "quality": QualityConfig(), "integrity": IntegrityConfig()}


def test_settings_reach_every_section_with_the_fields_types():
    out = with_settings(DEFAULTS, ["integrity.cache_ratio=0.5", "timing.idle_window_seconds=2", "timing.max_images=none",
                                   "timing.probes=false", "timing.batch_size=4", "quality.psnr_tolerance_db=1.5"])
    assert out["integrity"].cache_ratio == 0.5 and out["timing"].idle_window_seconds == 2.0
    assert out["timing"].max_images is None and out["timing"].probes is False
    assert out["timing"].batch_size == 4 and isinstance(out["timing"].batch_size, int)
    assert out["quality"].psnr_tolerance_db == 1.5
    assert DEFAULTS["integrity"].cache_ratio == 0.6          # the inputs are left alone


@pytest.mark.parametrize("setting, needle", [
    ("cache_ratio=0.5", "SECTION.NAME=VALUE"),
    ("scores.x=1", "SECTION.NAME=VALUE"),
    ("timing.no_such=1", "a field of timing"),
    ("timing.batch_size=2.5", "timing.batch_size='2.5': expected a value of type int"),
    ("timing.probes=maybe", "type bool"),
    ("integrity.cache_ratio=1.5", "cache_ratio=1.5: expected a fraction in (0, 1)"),
    ("integrity.different_db=70", "below identical_db"),
    ("integrity.self_report_tolerance=nan", "self_report_tolerance=nan"),
    ("timing.idle_window_seconds=0", "idle_window_seconds=0.0: expected > 0"),
])
def test_a_bad_setting_names_what_was_expected(setting, needle):
    with pytest.raises(ConfigError) as info:
        with_settings(DEFAULTS, [setting])
    assert needle in str(info.value)


def test_every_tunable_is_a_field_of_a_section():
    names = {f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
    for needed in ("integrity.timer_tolerance", "integrity.idle_cpu", "integrity.baseline_tolerance", "integrity.frozen_cpu",
                   "integrity.implausible_factor", "integrity.self_report_tolerance", "timing.idle_grace_seconds",
                   "timing.idle_window_seconds", "timing.load_cap_factor", "timing.baseline_batches", "timing.quiet_timeout",
                   "quality.ssim_tolerance", "quality.batch_ssim_margin"):
        assert needed in names


def test_the_report_lists_every_integrity_threshold_with_the_values_used():
    options = {"sandbox": "local", "out": "/tmp/x", "quality": dataclasses.asdict(QualityConfig()),
               "timing": dataclasses.asdict(TimingConfig()),
               "integrity": dataclasses.asdict(IntegrityConfig(cache_ratio=0.4, self_report_tolerance=0.1))}
    shown = thresholds(options)
    for f in dataclasses.fields(IntegrityConfig):
        assert f.name in shown
    assert shown["cache_ratio"] == 0.4 and shown["self_report_tolerance"] == 0.1
    assert shown["idle_window_seconds"] == 1.0 and shown["ssim_tolerance"] == 0.05
    old_run = {k: v for k, v in options.items() if k != "integrity"}      # run.json of an older grader
    assert thresholds(old_run)["cache_ratio"] == IntegrityConfig().cache_ratio
    doc = build(options, [], run_seed=1, started=time.time(), finished=time.time(), version="t",
                environment={"machine": {"device": "cpu"}})
    assert doc["thresholds"] == shown
