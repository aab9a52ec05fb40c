"""Runs: a task's variants in sandboxed workers under the trusted timing protocol.

Takes variant specs (module, model, device, limits) and the run's schedule; gives one
``VariantRun`` per variant (timed batches, phases, kept images, probes, telemetry).
"""
