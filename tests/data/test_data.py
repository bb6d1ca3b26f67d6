"""Loading datasets: IDX decoding, labels, and the cache of decoded arrays."""

import dataclasses
import gzip
import os
import re
import zipfile

import numpy as np
import pytest
from synthetic import synthetic_dataset, write_dataset

from bpnet.base.files import atomic_write
from bpnet.data import idx
from bpnet.data.idx import (
    CACHE_NAME,
    DataCorrupt,
    DataMissing,
    check_idx,
    decode_idx,
    load_arrays,
    load_dataset,
    load_split,
    read_idx,
)
from bpnet.data.specs import idx_size
from bpnet.errors import BpnetError


@pytest.fixture
def ds():
    return synthetic_dataset()


@pytest.fixture
def folder(ds, tmp_path):
    return write_dataset(ds, tmp_path)


@pytest.fixture
def decodes(monkeypatch):
    """A list that grows by one file name for every IDX file decoded from disk."""
    seen = []

    def spy(path, *args, **kw):
        seen.append(os.path.basename(path))
        return read_idx(path, *args, **kw)

    monkeypatch.setattr(idx, "read_idx", spy)
    return seen


def assert_arrays(got, ds):
    assert got.keys() == ds.arrays.keys()
    for k, a in ds.arrays.items():
        assert got[k].dtype == np.uint8 and np.array_equal(got[k], a)


def test_load_dataset_scales_flattens_and_encodes_labels(ds, folder):
    x, t, xt, tt = load_dataset(data_dir=folder.parent, spec=ds.spec)
    assert x.shape == (6, 784) and x.dtype == np.float32 and xt.shape == (4, 784)
    assert np.allclose(x * 255, ds.arrays["x_train"].reshape(6, -1))
    assert t.dtype == np.int64 and np.array_equal(tt, ds.arrays["t_test"])
    x, t, _, _ = load_dataset("mnist", folder.parent, False, np.float64, False, True, spec=ds.spec)
    assert (
        x.shape == (6, 1, 28, 28)
        and x.dtype == np.float64
        and x.max() == ds.arrays["x_train"].max()
    )
    assert t.shape == (6, 10) and np.array_equal(t.argmax(1), ds.arrays["t_train"])
    images, labels = load_split(folder.parent, "mnist", "test", spec=ds.spec)
    assert np.array_equal(images, ds.arrays["x_test"]) and np.array_equal(
        labels, ds.arrays["t_test"]
    )


def test_first_load_writes_a_uint8_cache_that_later_loads_use(ds, folder, decodes):
    assert_arrays(load_arrays(data_dir=folder.parent, spec=ds.spec), ds)
    assert len(decodes) == 4
    with np.load(folder / CACHE_NAME, allow_pickle=False) as z:
        assert {z[k].dtype for k in ("x_train", "t_train", "x_test", "t_test")} == {
            np.dtype(np.uint8)
        }
        assert [row.split()[0] for row in z["sources"]] == list(ds.files)
        assert [row.split()[3] for row in z["sources"]] == [f.sha256 for f in ds.spec.files]
    assert sorted(os.listdir(folder)) == sorted([*ds.files, CACHE_NAME])  # no temp files left
    assert_arrays(load_arrays(data_dir=folder.parent, spec=ds.spec), ds)
    assert len(decodes) == 4  # the second load did not touch the IDX files


def damage(path, how):
    raw = bytearray(path.read_bytes())
    if how == "truncated":
        raw = raw[: len(raw) // 2]
    elif how == "flipped":  # one byte of the pixel data in the middle of the archive
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("x_train.npy")
        raw[info.header_offset + 200] ^= 0xFF
    else:
        raw = b"not a zip at all"
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["truncated", "flipped", "garbage"])
def test_damaged_cache_is_detected_and_rebuilt(ds, folder, decodes, how):
    load_arrays(data_dir=folder.parent, spec=ds.spec)
    damage(folder / CACHE_NAME, how)
    assert_arrays(load_arrays(data_dir=folder.parent, spec=ds.spec), ds)
    assert len(decodes) == 8
    load_arrays(data_dir=folder.parent, spec=ds.spec)
    assert len(decodes) == 8  # rebuilt whole: used again


def test_changed_source_files_rebuild_the_cache(ds, folder, decodes):
    load_arrays(data_dir=folder.parent, spec=ds.spec)
    other = synthetic_dataset(seed=1)
    write_dataset(other, folder.parent)
    assert_arrays(load_arrays(data_dir=folder.parent, spec=other.spec), other)
    assert len(decodes) == 8
    st = os.stat(folder / "t10k-labels-idx1-ubyte.gz")
    os.utime(folder / "t10k-labels-idx1-ubyte.gz", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert_arrays(load_arrays(data_dir=folder.parent, spec=other.spec), other)
    assert len(decodes) == 12


def test_cache_is_not_used_for_a_spec_with_other_checksums(ds, folder):
    load_arrays(data_dir=folder.parent, spec=ds.spec)
    other = synthetic_dataset(seed=1)
    fix = re.escape(
        f"(run `bpnet download --dataset mnist --data-dir {folder.parent}` to fetch it again)"
    )
    with pytest.raises(DataCorrupt, match=r"SHA-256 mismatch .* " + fix):
        load_arrays(data_dir=folder.parent, spec=other.spec)


def test_missing_or_corrupt_files_name_the_fix(ds, folder):
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(DataCorrupt, match="train-labels-idx1-ubyte.gz: corrupt gzip"):
        load_dataset(data_dir=folder.parent, spec=ds.spec)
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(
        DataMissing,
        match=re.escape(
            f"train-labels-idx1-ubyte.gz: no such file (run `bpnet download --dataset mnist "
            f"--data-dir {folder.parent}` to fetch it)"
        ),
    ):
        load_dataset(data_dir=folder.parent, spec=ds.spec)
    assert not (folder / CACHE_NAME).exists()


def test_unwritable_folder_loads_without_a_cache(ds, folder, monkeypatch):
    def refuse(path, **options):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(idx, "atomic_write", refuse)
    assert_arrays(load_arrays(data_dir=folder.parent, spec=ds.spec), ds)
    assert not (folder / CACHE_NAME).exists()


def test_real_mnist_loads_then_comes_from_the_cache(mnist_data_dir, decodes):
    x, t, xt, tt = load_dataset(data_dir=mnist_data_dir)
    assert x.shape == (60000, 784) and xt.shape == (10000, 784) and x.min() >= 0 and x.max() == 1
    assert np.bincount(t).tolist()[:3] == [5923, 6742, 5958] and tt[:5].tolist() == [7, 2, 1, 0, 4]
    again = load_dataset(data_dir=mnist_data_dir)
    assert all(np.array_equal(a, b) for a, b in zip((x, t, xt, tt), again))
    assert len(decodes) == 4 and (mnist_data_dir / "mnist" / CACHE_NAME).is_file()


def test_unknown_names_are_input_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'emnist'"):
        load_dataset("emnist", tmp_path)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        load_split(tmp_path, "mnist", "val")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda raw: raw[:6], "6 bytes, too short for an IDX header"),
        (lambda raw: (2049).to_bytes(4, "big") + raw[4:], "IDX magic number 2049, expected 2051"),
        (lambda raw: raw[:4] + (7).to_bytes(4, "big") + raw[8:], "7 items, expected 6"),
        (lambda raw: raw[:8] + (27).to_bytes(4, "big") + raw[12:], "images of [27, 28] pixels"),
        (lambda raw: raw[:-1], "4703 data bytes, expected 4704"),
        (
            lambda raw: b"\x00\x00\x08\x02" + raw[4:],
            "not gzip/IDX (starts with b'\\x00\\x00\\x08\\x02",
        ),
    ],
)
def test_idx_header_checks(ds, edit, message):
    f = ds.spec.files[0]
    raw = ds.raw[f.name]
    assert np.array_equal(decode_idx(raw, f, "x"), ds.arrays["x_train"])
    with pytest.raises(DataCorrupt, match="^x: " + re.escape(message)):
        decode_idx(edit(raw), dataclasses.replace(f, sha256=""), "x")


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "weights.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("disk trouble")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["weights.bin"]
    with atomic_write(target) as fh:
        fh.write(b"new")
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["weights.bin"]


def chunked(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 3, 1000, 1 << 16])
def test_check_idx_streams_gzip_members_and_raw_idx_in_any_chunking(ds, size):
    f = ds.spec.files[0]
    raw = ds.raw[f.name]
    two_members = gzip.compress(raw[:100]) + gzip.compress(raw[100:])
    for content in (ds.files[f.name], two_members, raw):
        out = np.empty(idx_size(f), np.uint8)
        assert check_idx(chunked(content, size), f, "x", out) == (16, [6, 28, 28])
        assert out.tobytes() == raw
    for bad, message in [
        (ds.files[f.name] + b"junk", "corrupt gzip (data after the end"),
        (ds.files[f.name][:-9], "corrupt gzip (Compressed file ended"),
    ]:
        with pytest.raises(DataCorrupt, match="^x: " + re.escape(message)):
            check_idx(chunked(bad, size), f, "x")


def test_load_split_with_only_that_splits_files_reads_them_without_a_cache(ds, folder, decodes):
    for f in ds.spec.files[:2]:
        (folder / f.name).unlink()
    x, t = load_split(folder.parent, "mnist", "test", spec=ds.spec)
    assert np.array_equal(x, ds.arrays["x_test"]) and np.array_equal(t, ds.arrays["t_test"])
    assert decodes == [f.name for f in ds.spec.files[2:]]
    assert not (folder / CACHE_NAME).exists()
    with pytest.raises(DataMissing, match="train-images-idx3-ubyte.gz: no such file"):
        load_split(folder.parent, "mnist", "train", spec=ds.spec)


def test_load_split_with_the_whole_dataset_reads_only_its_arrays_from_the_cache(
    ds, folder, decodes
):
    load_arrays(data_dir=folder.parent, spec=ds.spec)
    x, t = load_split(folder.parent, "mnist", "test", spec=ds.spec)
    assert np.array_equal(x, ds.arrays["x_test"]) and len(decodes) == 4


def test_a_fifo_in_place_of_a_file_is_refused_at_once(ds, folder):
    name = ds.spec.files[3].name
    (folder / name).unlink()
    os.mkfifo(folder / name)
    with pytest.raises(DataCorrupt, match=re.escape(f"{folder / name}: not a regular file")):
        load_dataset(data_dir=folder.parent, spec=ds.spec)


def test_an_unwritable_temporary_folder_is_one_clear_error(ds, folder, monkeypatch, tmp_path):
    (tmp_path / "a file").write_bytes(b"")
    monkeypatch.setattr(idx.tempfile, "gettempdir", lambda: str(tmp_path / "a file" / "tmp"))
    with pytest.raises(
        BpnetError, match="cannot create the lock for .*; point TMPDIR at a writable folder"
    ):
        load_arrays(data_dir=folder.parent, spec=ds.spec)
