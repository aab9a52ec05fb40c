"""Content hashes that name the sandbox images (stdlib only; run by scripts/build_image.sh).

    python docker/inputs_hash.py sandbox                 # hash of sandbox/**/*.py
    python docker/inputs_hash.py inputs PATH... [--extra S]...

``sandbox`` is the hash baked into every image as the label ``sd-grader.sandbox-hash``; the
docker provider recomputes it from the ``sandbox`` package it would talk to
(``grader.isolation.docker.image.sandbox_hash``) and refuses a stale image, whose worker would
speak an older protocol. Both call one implementation, ``grader.files.sources_digest``
(standard library only, so a bare ``python3`` runs this script); a test checks that they agree.
``inputs`` names an image: the same inputs give the same tag, so a build whose tag already
exists is skipped.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script, sys.path[0] is docker/: make ``grader`` importable
    sys.path.insert(0, str(ROOT))

from grader.files import sources_digest  # after the sys.path line above, on purpose


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and not p.name.endswith((".pyc", ".pyo")) and p.name != ".gitignore")


def sandbox_hash(package_dir: Path = ROOT / "sandbox") -> str:
    """sha256 over ``sandbox/<rel>`` names and contents of every ``*.py`` under the package."""
    return sources_digest(package_dir, "sandbox")


def inputs_hash(paths: list[str], extras: list[str]) -> str:
    digest = hashlib.sha256()
    for name in paths:
        base = (ROOT / name).resolve()
        if not base.exists():
            continue
        for path in _files(base):
            rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
            digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    for extra in extras:
        digest.update(b"extra\0" + extra.encode() + b"\0")
    return digest.hexdigest()


def main(argv: list[str]) -> int:
    if argv[:1] == ["sandbox"]:
        print(sandbox_hash())
        return 0
    if argv[:1] == ["inputs"]:
        paths, extras, rest = [], [], argv[1:]
        while rest:
            item = rest.pop(0)
            if item == "--extra":
                extras.append(rest.pop(0))
            else:
                paths.append(item)
        print(inputs_hash(paths, extras))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
