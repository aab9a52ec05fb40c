"""Task set in: the benchmark owner's manifest, the agent's files, the run's prompt schedule.

Takes a task folder, a submission folder and a prompt pool; gives typed ``TaskEntry``\\s (or
``InvalidEntry``\\s with messages naming file, entry and field), each task's files, and the
seeded ``Schedule`` every variant walks. ``prepare`` builds a task set from GT files.
"""
