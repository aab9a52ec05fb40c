"""The run folder: ``run.json``, one atomically written result per task, resume keys, provenance.

Takes task results and the run's options; gives a folder that a killed run resumes from and
that ``grader report`` / ``grader rescore`` work on without the inputs.
"""
