"""Untrusted files (issue 15): what a worker leaves in its folders is read only through
``check_images`` (no link followed at any step, no FIFO opened, the size capped before
reading, the ``.npy`` header checked before any array is made) and cleaned up without
following a link.
"""

from __future__ import annotations

import io
import os
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from support import write

from grader.errors import WorkerCrashed
from grader.runs.session import check_images, remove_tree
from grader.runs.supervisor import _prepare_dirs

GT = "def load_pipeline():\n    return None\n"


# ----------------------------------------------------------------------------- findings 4 and 5: images


def _npy(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array, allow_pickle=False)
    return path


def _header(shape) -> bytes:
    fh = io.BytesIO()
    np.lib.format.write_array_header_1_0(fh, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return fh.getvalue()


def _sparse_npy(path: Path, shape=(16384, 21846, 3)) -> Path:
    """A 1 GiB .npy whose pixels are a hole: cheap to make, ruinous to load."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = _header(shape)
    with open(path, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + int(np.prod(shape)))
    return path


IMAGE = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)


def _bad_image(work: Path, files=("000.npy",)) -> WorkerCrashed:
    with pytest.raises(WorkerCrashed) as info:
        check_images(work, "out/b0000", list(files), len(files))
    assert "bad_image" in info.value.flags
    return info.value


def _peak_bytes(action):
    """``(what action() returned, the peak bytes Python allocated meanwhile)``."""
    tracemalloc.start()
    try:
        value = action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return value, peak


def test_an_npz_archive_sent_as_an_image_is_bad_image(tmp_path):
    folder = tmp_path / "out" / "b0000"
    folder.mkdir(parents=True)
    with open(folder / "000.npy", "wb") as fh:
        np.savez(fh, image=IMAGE)
    assert "unreadable" in str(_bad_image(tmp_path))


@pytest.mark.parametrize("array", [IMAGE.astype(np.float32), IMAGE[..., :2], np.array(["x"], dtype=object)],
                         ids=["float", "two_channels", "object"])
def test_arrays_that_are_not_images_are_bad_image(tmp_path, array):
    path = tmp_path / "out" / "b0000" / "000.npy"
    if array.dtype == object:
        path.parent.mkdir(parents=True)
        np.save(path, array, allow_pickle=True)
    else:
        _npy(path, array)
    _bad_image(tmp_path)


def test_a_sparse_gigabyte_named_as_an_image_is_refused_before_it_is_read(tmp_path):
    _sparse_npy(tmp_path / "out" / "b0000" / "000.npy")
    error, peak = _peak_bytes(lambda: _bad_image(tmp_path))
    assert "larger than" in str(error) and peak < 8 << 20


def test_a_header_that_claims_more_pixels_than_the_file_holds_allocates_nothing(tmp_path):
    path = write(tmp_path / "out" / "b0000" / "000.npy", "")
    path.write_bytes(_header((100_000, 100_000, 3)) + bytes(10))   # 30 GB claimed, ten bytes held
    error, peak = _peak_bytes(lambda: _bad_image(tmp_path))
    assert "the header says" in str(error) and peak < 8 << 20


def test_a_sparse_gigabyte_beside_the_images_is_never_read(tmp_path):
    folder = tmp_path / "out" / "b0000"
    _npy(folder / "000.npy", IMAGE)
    _npy(folder / "001.npy", IMAGE)
    _sparse_npy(folder / "002.npy")
    _sparse_npy(folder / "999.npy")
    arrays, peak = _peak_bytes(lambda: check_images(tmp_path, "out/b0000", ["000.npy", "001.npy"], 2))
    assert [a.shape for a in arrays] == [(4, 5, 3)] * 2 and np.array_equal(arrays[0], IMAGE)
    assert peak < 8 << 20


def test_a_fifo_named_like_an_image_does_not_hang(tmp_path):
    folder = tmp_path / "out" / "b0000"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "000.npy")
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(_bad_image(tmp_path)), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "reading a FIFO image hung the grader"
    assert outcome and "not a regular file" in str(outcome[0])


# ----------------------------------------------------------------------------- finding 7: links


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    _npy(outside / "b0000" / "000.npy", IMAGE)
    write(outside / "b0000" / "keep.txt", "precious")
    return outside


def test_an_out_folder_replaced_by_a_link_is_neither_read_nor_emptied(tmp_path):
    work, outside = tmp_path / "work", _outside(tmp_path)
    work.mkdir()
    os.symlink(outside, work / "out")
    assert "not a plain folder" in str(_bad_image(work))
    remove_tree(work, "out/b0000")
    assert (outside / "b0000" / "keep.txt").read_text() == "precious" and (outside / "b0000" / "000.npy").exists()


def test_a_batch_folder_that_is_a_link_is_unlinked_not_entered(tmp_path):
    work, outside = tmp_path / "work", _outside(tmp_path)
    (work / "out").mkdir(parents=True)
    os.symlink(outside / "b0000", work / "out" / "b0000")
    _bad_image(work)
    remove_tree(work, "out/b0000")
    assert not os.path.lexists(work / "out" / "b0000") and (outside / "b0000" / "keep.txt").exists()


def test_links_a_worker_planted_in_its_work_folder_are_not_followed_on_cleanup(tmp_path):
    outside = _outside(tmp_path)
    module = write(tmp_path / "m.py", GT)
    work, _ = _prepare_dirs(tmp_path / "variant", module)
    os.symlink(outside, work / "link")
    os.symlink(outside / "b0000" / "keep.txt", work / "tmp" / "keep.txt")
    (work / "out" / "b0000").mkdir()
    os.symlink(outside / "b0000", work / "out" / "b0000" / "inner")
    remove_tree(work, "out/b0000")
    _prepare_dirs(tmp_path / "variant", module)          # a second attempt cleans the first one's folder
    assert (outside / "b0000" / "keep.txt").read_text() == "precious" and (outside / "b0000" / "000.npy").exists()
    assert sorted(p.name for p in (tmp_path / "variant" / "work").iterdir()) == ["out", "tmp"]
