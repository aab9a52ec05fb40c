"""Commands: one module per CLI command (grade/validate, prepare, doctor/cleanup, report/rescore).

Each takes parsed arguments, builds the typed config and calls the library; it gives an exit
code. ``grader.cli`` registers them.
"""
