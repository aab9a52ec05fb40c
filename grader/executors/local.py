"""The local executor: tasks on this host, one at a time per GPU.

With one GPU or none, tasks run in order in the calling thread. With several, each GPU has
one thread taking the next task, so independent tasks run concurrently while no GPU ever
holds two timed runs at once (a task's variants share its GPU and are interleaved, never
simultaneous).
"""

from __future__ import annotations

import threading
from typing import Callable


def for_each_gpu(gpus: tuple[str, ...], items: list[tuple], work: Callable) -> None:
    """Call ``work(*item, gpu)`` for every item, one item per GPU at a time."""
    if len(gpus) <= 1:
        for item in items:
            work(*item, gpus[0] if gpus else None)
        return
    pending = list(reversed(items))
    guard = threading.Lock()

    def drain(gpu: str) -> None:
        while True:
            with guard:
                if not pending:
                    return
                item = pending.pop()
            work(*item, gpu)

    threads = [threading.Thread(target=drain, args=(gpu,), name=f"gpu-{gpu}") for gpu in gpus]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
