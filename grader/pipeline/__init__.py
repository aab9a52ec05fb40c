"""The pipeline: a submission and a task set in, a graded run folder out, stage by stage.

Takes a ``GradeConfig``; gives ``RUN_DIR`` with one result per task and every report
(``grade``), reporting progress to the console and ``RUN_DIR/log.jsonl`` on the way.
"""
