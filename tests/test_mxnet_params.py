"""MXNet .params files read and written with numpy alone, against files written by real MXNet; corrupt files
(property-based) load or are refused with one RoadedgeError, never another exception or a huge allocation."""
import os
import struct
import tracemalloc
from collections import OrderedDict

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from roadedge.core.errors import RoadedgeError
from roadedge.core.mxnet_params import DTYPES, V2_MAGIC, V3_MAGIC, dumps_params, load_params, loads_params, split_arg_aux
from tests.fixtures.mxnet.make_params_fixtures import ARRAYS, values

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "mxnet")


def test_reads_every_dtype_written_by_mxnet_v2():
    arrays = load_params(os.path.join(HERE, "v2_all_dtypes.params"))
    assert list(arrays) == [name for name, _, _ in ARRAYS]
    for index, (name, dtype, shape) in enumerate(ARRAYS):
        assert arrays[name].dtype == np.dtype(dtype), name
        np.testing.assert_array_equal(arrays[name], values(index, dtype, shape))


def test_reads_numpy_shape_v3_magic():
    arrays = load_params(os.path.join(HERE, "v3_numpy_shape.params"))
    np.testing.assert_array_equal(arrays["arg:w"], values(0, "float32", (2, 2)))


def test_written_file_is_byte_identical_to_mxnets():
    with open(os.path.join(HERE, "v2_all_dtypes.params"), "rb") as handle:
        original = handle.read()
    assert dumps_params(loads_params(original)) == original


def test_split_arg_aux():
    args, aux = split_arg_aux(load_params(os.path.join(HERE, "v2_all_dtypes.params")))
    assert list(aux) == ["bn_moving_var"] and "conv0_weight" in args and len(args) == 7


def test_truncated_and_foreign_files_are_one_line_errors(tmp_path):
    with open(os.path.join(HERE, "v2_all_dtypes.params"), "rb") as handle:
        original = handle.read()
    message = r"x.params: truncated MXNet params file: needs 8 more bytes at byte 36 while reading array 0"
    with pytest.raises(RoadedgeError, match=message):
        loads_params(original[:60], "x.params")
    with pytest.raises(RoadedgeError, match=r"truncated MXNet params file: .* while reading the array names"):
        loads_params(original[:-3], "x.params")
    with pytest.raises(RoadedgeError, match=r"y.bin: not an MXNet params file \(header 0x464c457f, expected 0x112\)"):
        loads_params(b"\x7fELF" + bytes(40), "y.bin")
    with pytest.raises(RoadedgeError, match="unknown NDArray magic 0xdeadbeef"):
        loads_params(original[:24] + b"\xef\xbe\xad\xde" + original[28:], "z.params")
    with pytest.raises(RoadedgeError, match="cannot read params file"):
        load_params(str(tmp_path / "missing.params"))


# ---- corrupt containers: a valid result or one RoadedgeError naming the file, never another exception -------------

HUGE = [2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 1, 2 ** 62, 2 ** 63 - 1, 2 ** 64 - 1, -1, -(2 ** 31), -(2 ** 63)]
NAMES = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


def header_array(shape, flag=0, magic=V2_MAGIC, ndim=None):
    """A .params file of one array record whose header says `shape`, followed by 64 bytes (not what the shape needs)."""
    ndim = len(shape) if ndim is None else ndim
    return (struct.pack("<QQQ", 0x112, 0, 1) + struct.pack("<Iii", magic, 0, ndim)
            + struct.pack("<{}q".format(len(shape)), *shape) + struct.pack("<iii", 1, 0, flag) + bytes(64))


def parse_or_refuse(data, source="fuzz.params"):
    """loads_params: an OrderedDict or one RoadedgeError naming the file, and memory bounded by the input's size."""
    tracemalloc.start()
    try:
        return loads_params(data, source)
    except RoadedgeError as err:
        message = str(err)
        assert message.startswith(source + ": ") and "\n" not in message, message
        return None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 4 * len(data) + (1 << 20), "{} bytes allocated for a {}-byte file".format(peak, len(data))


@pytest.mark.parametrize("shape,flag,magic,ndim,message", [
    ((2 ** 32, 2 ** 32), 0, V2_MAGIC, None, r"array 0 of shape \(4294967296, 4294967296\) \(float32\) needs "
                                            r"73786976294838206464 bytes at byte \d+, only 64 are left"),
    ((2 ** 62, 2 ** 62, 2 ** 62), 6, V2_MAGIC, None, r"truncated MXNet params file: array 0 of shape"),
    ((-1, 4), 0, V2_MAGIC, None, r"array 0: negative dimension in shape \(-1, 4\)"),
    ((0, 2 ** 62), 0, V3_MAGIC, None, r"array 0: shape \(0, 4611686018427387904\) is not a possible array"),
    ((), 0, V2_MAGIC, 2 ** 31 - 1, r"array 0: 2147483647 dimensions \(corrupt file\? MXNet arrays have at most 32\)"),
], ids=["2^32 x 2^32", "2^62 cubed int64", "negative", "zero times 2^62", "ndim 2^31-1"])
def test_huge_or_negative_shapes_are_refused_before_anything_is_allocated(shape, flag, magic, ndim, message):
    data = header_array(shape, flag, magic, ndim)
    tracemalloc.start()
    try:
        with pytest.raises(RoadedgeError, match="^big.params: " + ".*" + message):
            loads_params(data, "big.params")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 1 << 20


def test_a_name_that_is_not_utf8_is_refused():
    data = dumps_params(OrderedDict([("arg:w", np.zeros(2, np.float32))]))
    with pytest.raises(RoadedgeError, match=r"^n.params: corrupt MXNet params file: array name 0 is not UTF-8 text"):
        loads_params(data[:-5] + b"\xff\xfe\xfd\xfc\xfb", "n.params")


@st.composite
def containers(draw):
    """A valid .params file (1-4 arrays of any stored dtype, 1-4 dimensions) and the arrays it holds."""
    names = draw(st.lists(NAMES, min_size=0, max_size=4, unique=True))
    arrays = OrderedDict()
    for name in names:
        dtype = np.dtype(draw(st.sampled_from(sorted(set(DTYPES.values())))))
        arrays[name] = draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4)))
    return dumps_params(arrays), arrays


@st.composite
def mutated(draw):
    """A valid container, then one to three corruptions: cut short, bytes flipped, a huge or negative int written
    over any 4 or 8 bytes (a count, ndim, a dimension, a name length), bytes inserted or removed."""
    data, _ = draw(containers())
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "huge", "insert", "delete"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "huge":
            fmt = draw(st.sampled_from(["<q", "<Q", "<i", "<I"]))
            bits = 8 * struct.calcsize(fmt)
            value = draw(st.sampled_from(HUGE)) % 2 ** bits  # the same bit pattern, in the format's range
            if fmt.islower() and value >= 2 ** (bits - 1):
                value -= 2 ** bits
            packed = struct.pack(fmt, value)
            data[at:at + len(packed)] = packed
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at:at + draw(st.integers(1, 16))]
    return bytes(data)


@given(containers())
def test_property_valid_containers_round_trip(container):
    data, arrays = container
    loaded = parse_or_refuse(data)
    assert loaded is not None and list(loaded) == list(arrays)
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape
        np.testing.assert_array_equal(loaded[name], array)


@given(mutated())
def test_property_mutated_containers_load_or_are_refused(data):
    loaded = parse_or_refuse(data)
    if loaded is not None:
        assert all(isinstance(value, np.ndarray) for value in loaded.values())


@given(st.binary(max_size=256))
def test_property_random_bytes_are_refused(data):
    assert parse_or_refuse(data) is None or data[:8] == struct.pack("<Q", 0x112)
