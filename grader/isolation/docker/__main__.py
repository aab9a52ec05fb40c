"""``python -m grader.isolation.docker --reap PID START``: the reaper child the provider starts.

A module of its own so that running it does not re-import ``reaper`` (which the package's
``__init__`` has already imported).
"""

from __future__ import annotations

import sys

from grader.isolation.docker.reaper import REAPER_MODULE, reap_main

if len(sys.argv) == 4 and sys.argv[1] == "--reap":
    sys.exit(reap_main(sys.argv[2], sys.argv[3]))
sys.exit(f"usage: python -m {REAPER_MODULE} --reap PID START (started by the docker provider)")
