"""Scores: speedups with intervals, image quality and the GT-calibrated gate, aggregates.

Takes the variants' runs, their evidence and their stored images; gives one ``TaskResult``
per task and the run's summary (geomean speedup, fast_p, beats-GT, by difficulty).
"""
