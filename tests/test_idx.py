"""Unit tests of the IDX parser on small generated files."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex_fa.data.idx import pair_images_labels, parse_idx, read_idx
from cortex_fa.errors import DataError


def make_idx(array, *, code=0x08, zero=0) -> bytes:
    """Encode ``array`` (uint8) as an IDX file, with optionally wrong header fields."""
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", zero, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


@pytest.fixture
def images():
    return np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)


def test_good_file_round_trips(tmp_path, images):
    path = tmp_path / "imgs-idx3-ubyte"
    path.write_bytes(make_idx(images))
    out = read_idx(path, ndim=3)
    assert out.dtype == np.uint8 and out.shape == (3, 4, 5)
    np.testing.assert_array_equal(out, images)
    assert not out.flags.writeable  # a view of the file bytes: must not be mutated


def test_labels_file(images):
    labels = parse_idx(make_idx([7, 0, 9]), "labels", ndim=1)
    assert labels.tolist() == [7, 0, 9]


def test_truncated_data_names_file(images):
    data = make_idx(images)[:-1]
    expected = r"imgs-idx3-ubyte: IDX file truncated: 75 bytes, expected 76 for shape \(3, 4, 5\)"
    with pytest.raises(DataError, match=expected):
        parse_idx(data, "imgs-idx3-ubyte", ndim=3)


def test_truncated_header():
    with pytest.raises(DataError, match="truncated IDX header"):
        parse_idx(make_idx(np.zeros((2, 2, 2)))[:9], "f", ndim=3)
    with pytest.raises(DataError, match="f: not an IDX file"):
        parse_idx(b"\x00\x00", "f")


def test_extra_bytes(images):
    with pytest.raises(DataError, match="has extra bytes: 77 bytes, expected 76"):
        parse_idx(make_idx(images) + b"\x00", "imgs", ndim=3)


def test_wrong_magic(images):
    with pytest.raises(DataError, match="imgs: not an IDX file .bad magic number 0x1f8b"):
        parse_idx(b"\x1f\x8b" + make_idx(images)[2:], "imgs")  # e.g. a gzip file
    with pytest.raises(DataError, match="bad magic"):
        parse_idx(make_idx(images, zero=1), "imgs")


def test_wrong_dtype_code(images):
    with pytest.raises(DataError, match=r"imgs: IDX type code 0x0d \(float32\), expected 0x08"):
        parse_idx(make_idx(images, code=0x0D), "imgs")


def test_wrong_ndim(images):
    with pytest.raises(DataError, match="labels: IDX file has 3 dimensions, expected 1"):
        parse_idx(make_idx(images), "labels", ndim=1)


def test_missing_file_names_path(tmp_path):
    with pytest.raises(DataError, match="cannot read .*nope"):
        read_idx(tmp_path / "nope")


def test_pair_flattens_rows(images):
    flat, labels = pair_images_labels(images, np.arange(3, dtype=np.uint8))
    assert flat.shape == (3, 20)
    np.testing.assert_array_equal(flat[1], images[1].ravel())
    assert labels.shape == (3,)


def test_pair_count_mismatch_names_both_files(images):
    with pytest.raises(DataError, match="train-images has 3 images but train-labels has 2 labels"):
        pair_images_labels(images, np.zeros(2, np.uint8),
                           images_name="train-images", labels_name="train-labels")


def test_pair_wrong_rank(images):
    with pytest.raises(DataError, match="expected 3-d images and 1-d labels"):
        pair_images_labels(images[0], np.zeros(4, np.uint8))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_round_trip_any_shape(shape, rnd):
    array = np.array([rnd.randrange(256) for _ in range(int(np.prod(shape)))],
                     dtype=np.uint8).reshape(shape)
    out = parse_idx(make_idx(array), "x", ndim=len(shape))
    assert out.shape == tuple(shape)
    np.testing.assert_array_equal(out, array)
