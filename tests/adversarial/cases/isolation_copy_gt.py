"""Trick: copy the reference implementation: read the GT's code from where the task set lives on
the host and run it as its own (and, failing that, give up). Defence: the docker sandbox does not
show the GT code to the worker; the variant fails to load (status error)."""

from pathlib import Path

GT_PATH = ""   # the test fills in the host path of this task's GT file

namespace = {}
exec(compile(Path(GT_PATH).read_text(), GT_PATH, "exec"), namespace)
load_pipeline = namespace["load_pipeline"]
inference = namespace["inference"]
