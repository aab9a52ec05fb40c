"""Model folders as users have them: checked up front, and mounted so their links resolve.

Why: a model folder that the sandboxed worker cannot read or load used to surface deep in the
worker as a load error per variant (or worse), long after grading began. ``grade``,
``validate`` and ``doctor`` call :func:`problems` first, so such a folder is refused with the
file it concerns and the command that fixes it:

- weights readable by their owner only (``save_pretrained`` writes mode 600), when the worker
  runs as another uid (docker, and bwrap run by root: uid 10001): ``chmod -R a+rX ROOT``;
- a Hugging Face cache snapshot (``models--org--name/snapshots/<rev>/``, every file a
  relative link into ``../../blobs/``) works: :func:`mount_for` mounts the
  ``models--org--name`` root and names the snapshot inside it, so the links resolve inside
  the mount. Links are resolved on the host only within that root; one that is absolute,
  broken or escapes the root is refused;
- a missing ``model_index.json``, component folder, config or weights file, a shard named by
  an ``*.index.json`` that is not there, and a truncated or malformed safetensors file
  (8-byte little-endian header length, a JSON header, every tensor's data offsets within
  the file) are named before any worker starts.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path

from grader.errors import ConfigError, GraderError

SNAPSHOT_PREFIX = "models--"
CONFIG_FILES = ("config.json", "scheduler_config.json", "tokenizer_config.json", "preprocessor_config.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".index.json")
MAX_HEADER = 100 << 20
MAX_ENTRIES = 20000


@dataclass(frozen=True)
class ModelMount:
    """What to mount (``root``) and where the model lies inside it (``inner``, relative)."""

    root: Path
    inner: str = ""

    def inside(self, mount_path: str) -> str:
        return f"{mount_path}/{self.inner}" if self.inner else mount_path


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}; fix: {self.fix}"


def mount_for(folder: Path) -> ModelMount:
    """A snapshot of a Hugging Face cache is mounted from its ``models--org--name`` root."""
    folder = Path(os.path.abspath(folder))
    parent = folder.parent
    if parent.name == "snapshots" and parent.parent.name.startswith(SNAPSHOT_PREFIX):
        return ModelMount(parent.parent, f"snapshots/{folder.name}")
    return ModelMount(folder)


def resolve(root: Path, model: str) -> Path:
    """``root/<model>/`` when present, else ``root`` itself if it is a diffusers folder."""
    if (root / model / "model_index.json").is_file():
        return (root / model).resolve()
    if (root / "model_index.json").is_file():
        return root.resolve()
    raise GraderError(f"--model-dir {root}: no diffusers folder for model {model!r} "
                      f"(expected {root / model}/model_index.json or {root}/model_index.json)")


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _can_read(st: os.stat_result, reader: tuple[int, int] | None) -> bool:
    if reader is None or reader[0] == 0:
        return True
    need = 0o5 if stat.S_ISDIR(st.st_mode) else 0o4
    shift = 6 if st.st_uid == reader[0] else 3 if st.st_gid == reader[1] else 0
    return (st.st_mode >> shift) & need == need


class _Walk:
    """Every entry of a model folder, links resolved within the mount root (never outside it)."""

    def __init__(self, mount: ModelMount, reader: tuple[int, int] | None):
        self.root = os.path.realpath(mount.root)
        self.reader = reader
        self.fix_perms = f"chmod -R a+rX {shlex.quote(str(mount.root))}"
        self.found: list[Problem] = []
        self.files: dict[Path, str] = {}      # shown path -> real path, regular files only
        self.checked: set[str] = set()
        self.count = 0

    def add(self, path: Path, message: str, fix: str) -> None:
        self.found.append(Problem(path, message, fix))

    def readable(self, shown: Path, real: str, st: os.stat_result) -> None:
        here = real
        while _within(here, self.root):
            if here not in self.checked:
                self.checked.add(here)
                info = st if here == real else os.stat(here)
                if not _can_read(info, self.reader):
                    what = "folder" if stat.S_ISDIR(info.st_mode) else "file"
                    self.add(shown if here == real else Path(here),
                             f"this {what} (mode {stat.S_IMODE(info.st_mode):03o}, owner uid {info.st_uid}) is not "
                             f"readable by the sandbox's uid {self.reader[0]}", self.fix_perms)
            if here == self.root:
                break
            here = os.path.dirname(here)

    def target(self, shown: Path) -> str | None:
        """The real path of ``shown`` when every link on the way stays within the root."""
        if shown.is_symlink():
            link = os.readlink(shown)
            if os.path.isabs(link):
                self.add(shown, f"is an absolute link ({link}): inside the sandbox it points nowhere",
                         f"make it relative, or copy the folder with its links resolved: cp -rL {shown.parent} NEWDIR")
                return None
        real = os.path.realpath(shown)
        if not _within(real, self.root):
            self.add(shown, f"links outside {self.root} (to {real}), which the sandbox cannot see",
                     "copy the folder with its links resolved: cp -rL FOLDER NEWDIR")
            return None
        if not os.path.exists(real):
            self.add(shown, f"is a broken link (to {real})", "re-download the model, or repair the link")
            return None
        return real

    def walk(self, shown: Path, seen: frozenset = frozenset()) -> None:
        try:
            self._walk(shown, seen)
        except OSError as exc:
            self.add(shown, f"cannot be read by the grader itself ({exc.strerror})", self.fix_perms)

    def _walk(self, shown: Path, seen: frozenset) -> None:
        real = self.target(shown)
        if real is None or real in seen:
            return
        st = os.stat(real)
        self.readable(shown, real, st)
        if stat.S_ISREG(st.st_mode):
            self.files[shown] = real
            return
        if not stat.S_ISDIR(st.st_mode):
            return
        if not os.access(real, os.R_OK | os.X_OK):
            self.add(shown, "cannot be listed by the grader itself", self.fix_perms)
            return
        for name in sorted(os.listdir(real)):
            self.count += 1
            if self.count > MAX_ENTRIES:
                return
            self.walk(shown / name, seen | {real})


def safetensors_problem(path: Path, real: str) -> str | None:
    """Why the safetensors file at ``real`` cannot be loaded (None when its header and size agree)."""
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 8:
            return f"is truncated: {size} bytes, not even the 8-byte header length"
        length = int.from_bytes(fh.read(8), "little")
        if length > size - 8 or length > MAX_HEADER:
            return f"is truncated or not safetensors: its header length says {length} bytes, the file has {size - 8} after it"
        try:
            header = json.loads(fh.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return f"has a header that is not JSON ({exc})"
    if not isinstance(header, dict):
        return "has a header that is not a JSON object"
    data, end, last = size - 8 - length, 0, None
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            return f"has a malformed header entry for tensor {name!r}"
        if offsets[1] > end:
            end, last = offsets[1], name
    if end > data:
        return (f"is truncated: tensor {last!r} ends at byte {end} of the data but the file holds only {data} "
                f"({size} bytes in all)")
    return None


def _json(walk: _Walk, path: Path, what: str) -> object | None:
    real = walk.files.get(path)
    if real is None:
        if not any(p.path == path for p in walk.found):
            walk.add(path, f"is missing ({what})", "re-download or re-save the model (save_pretrained)")
        return None
    try:
        return json.loads(Path(real).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        walk.add(path, f"is not valid JSON ({exc})", "re-download or re-save the model (save_pretrained)")
        return None


def _needs_weights(walk: _Walk, folder: Path) -> None:
    config = _json(walk, folder / "config.json", "the model's config")
    if not isinstance(config, dict) or not ("_class_name" in config or "architectures" in config):
        return
    if not any(p.parent == folder and p.name.endswith(WEIGHT_SUFFIXES) for p in walk.files):
        walk.add(folder, "holds no weights file (*.safetensors, *.bin)", "re-download or re-save the model (save_pretrained)")


def _components(walk: _Walk, folder: Path) -> None:
    index = _json(walk, folder / "model_index.json", "the diffusers pipeline's index")
    if index is None:
        return
    if not isinstance(index, dict):
        walk.add(folder / "model_index.json", "is not a JSON object", "re-download or re-save the pipeline")
        return
    for name, value in sorted(index.items()):
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2 or None in value:
            continue
        part = folder / name
        if not part.is_dir():
            walk.add(part, f"is missing: model_index.json lists component {name!r} ({value[1]})",
                     "re-download or re-save the pipeline (save_pretrained)")
        elif not any((part / c) in walk.files for c in CONFIG_FILES):
            walk.add(part, f"holds no config ({', '.join(CONFIG_FILES)})", "re-download or re-save the pipeline")
        elif (part / "config.json") in walk.files:
            _needs_weights(walk, part)


def _weights(walk: _Walk) -> None:
    for path, real in sorted(walk.files.items()):
        if path.name.endswith(".safetensors"):
            why = safetensors_problem(path, real)
            if why:
                walk.add(path, why, "re-download or re-save the model (save_pretrained)")
        elif path.name.endswith(".index.json"):
            index = _json(walk, path, "a sharded weights index")
            shards = index.get("weight_map", {}) if isinstance(index, dict) else {}
            for shard in sorted(set(shards.values()) if isinstance(shards, dict) else ()):
                if path.parent / str(shard) not in walk.files:
                    walk.add(path.parent / str(shard), f"is missing: {path.name} names this shard",
                             "re-download the model (every shard the index names)")


def problems(folder: Path, kind: str = "pipeline", reader: tuple[int, int] | None = None) -> list[Problem]:
    """Everything that would stop a worker reading ``folder`` as ``reader`` (uid, gid; None: anyone).

    ``kind`` is ``pipeline`` (a diffusers folder with ``model_index.json``) or ``clip`` (a
    transformers folder with ``config.json``)."""
    folder = Path(os.path.abspath(folder))
    if not folder.is_dir():
        return [Problem(folder, "is not a folder", "pass an existing model folder")]
    walk = _Walk(mount_for(folder), reader)
    walk.walk(folder)
    if kind == "pipeline":
        _components(walk, folder)
    else:
        _needs_weights(walk, folder)
    _weights(walk)
    return walk.found


def require(folder: Path, option: str, kind: str = "pipeline", reader: tuple[int, int] | None = None) -> None:
    """Raise ConfigError (exit 2) naming the first problems of ``folder`` and how to fix them."""
    found = problems(folder, kind, reader)
    if not found:
        return
    shown = "\n  ".join(f"{p.path}: {p.message}" for p in found[:5])
    more = f"\n  ... and {len(found) - 5} more" if len(found) > 5 else ""
    fixes = sorted({p.fix for p in found}, key=[p.fix for p in found].index)
    raise ConfigError(f"{option} {folder}: {len(found)} problem(s) would stop the sandboxed worker:\n  {shown}{more}\n"
                      f"fix: {'; '.join(fixes)}")


def require_inputs(model_dir: Path | None, models: set[str], clip_model: Path | None,
                   reader: tuple[int, int] | None) -> None:
    """``require`` on every pipeline folder the tasks' ``models`` resolve to (read by ``reader``), and the CLIP folder.

    A model with no folder at all is left to its tasks (they end ``error``, ``no_model``). The
    CLIP folder is read by the grader itself (scoring never runs in a worker): only its
    contents are checked, not who can read it."""
    seen: set[Path] = set()
    for name in sorted(models) if model_dir is not None else ():
        try:
            folder = resolve(model_dir, name)
        except GraderError:
            continue
        if folder not in seen:
            seen.add(folder)
            require(folder, "--model-dir", "pipeline", reader)
    if clip_model is not None:
        require(clip_model, "--clip-model", "clip", None)
