"""MXNet .params files read and written with numpy alone, against files written by real MXNet."""
import os

import numpy as np
import pytest

from roadedge.core.errors import RoadedgeError
from roadedge.core.mxnet_params import dumps_params, load_params, loads_params, split_arg_aux
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
