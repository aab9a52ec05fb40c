"""Executors: where tasks are graded, this host's GPUs (``local``) or a Ray cluster (``ray``).

Takes the tasks to grade and the pipeline's grading function; gives each task's result back
to the caller, who writes it.
"""
