"""Refuse a wheelhouse with a package that constraints.txt does not pin (stdlib only).

    python docker/check_pins.py WHEELHOUSE constraints.txt

Run by scripts/build_image.sh after ``pip download``: the image's versions come from the
top-level constraints.txt, and a constraint only binds what it names, so a new dependency of a
new release would otherwise enter the image at whatever version was newest that day. torch is
exempt (pinned in requirements-cpu.txt: its ``+cpu`` build is not the host's).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

EXEMPT = frozenset({"torch"})


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """``name == version`` lines of a constraints file, by normalized name (comments, options skipped)."""
    found: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = (part.strip() for part in line.split("==", 1))
            found[normalize(name)] = version
    return found


def unpinned(wheelhouse: Path, constraints: Path) -> list[str]:
    """Wheels in ``wheelhouse`` whose distribution ``constraints`` does not pin, at the pinned version."""
    pinned = pins(constraints)
    loose = []
    for wheel in sorted(Path(wheelhouse).glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        key = normalize(name)
        if key not in EXEMPT and pinned.get(key) != version:
            loose.append(wheel.name)
    return loose


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    loose = unpinned(Path(argv[0]), Path(argv[1]))
    for name in loose:
        print(f"check_pins: {name} is not pinned at this version in {argv[1]}", file=sys.stderr)
    return 1 if loose else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
