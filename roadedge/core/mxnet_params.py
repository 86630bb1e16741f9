"""MXNet `.params` files (NDArray lists) read and written with numpy alone.

Layout (little endian): uint64 0x112, uint64 0, uint64 count, then per array:
uint32 magic (0xF993FAC9 = V2, 0xF993FACA = V3 numpy-shape), int32 storage
type (0 = dense), int32 ndim, int64 dims[ndim], int32 dev_type, int32 dev_id,
int32 dtype flag, raw data; then uint64 count and per name uint64 length +
bytes ('arg:NAME' / 'aux:NAME').
"""
import struct
from collections import OrderedDict
from functools import reduce

import numpy as np

from roadedge.core.errors import RoadedgeError

LIST_MAGIC = 0x112
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA
# mshadow type flags
DTYPES = {0: "float32", 1: "float64", 2: "float16", 3: "uint8", 4: "int32", 5: "int8", 6: "int64",
          7: "bool", 8: "int16", 9: "uint16", 10: "uint32", 11: "uint64"}
FLAGS = {np.dtype(name): flag for flag, name in DTYPES.items()}
MAX_NDIM = 32  # MXNet's (and numpy's) limit on dimensions


class _Reader:
    def __init__(self, data, source):
        self.data = data
        self.pos = 0
        self.source = source
        self.what = "header"

    def take(self, size):
        if self.pos + size > len(self.data):
            raise RoadedgeError("{}: truncated MXNet params file: needs {} more bytes at byte {} while reading {}".format(
                self.source, self.pos + size - len(self.data), self.pos, self.what))
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def remaining(self):
        return len(self.data) - self.pos


def loads_params(data, source="<params>"):
    """Bytes of a .params file -> OrderedDict name -> numpy array (names as stored, e.g. 'arg:conv0_weight')."""
    reader = _Reader(data, source)
    if len(data) < 16:
        raise RoadedgeError("{}: not an MXNet params file ({} bytes; expected a 16-byte header)".format(source, len(data)))
    header, _reserved = reader.unpack("QQ")
    if header != LIST_MAGIC:
        raise RoadedgeError("{}: not an MXNet params file (header 0x{:x}, expected 0x112)".format(source, header))
    (count,) = reader.unpack("Q")
    arrays = [_read_array(reader, index) for index in range(count)]
    reader.what = "the array names"
    (name_count,) = reader.unpack("Q")
    names = []
    for index in range(name_count):
        (length,) = reader.unpack("Q")
        raw = reader.take(length)
        try:
            names.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise RoadedgeError("{}: corrupt MXNet params file: array name {} is not UTF-8 text ({!r})".format(
                source, index, bytes(raw[:40]))) from None
    if name_count == 0:
        names = [str(index) for index in range(count)]
    elif name_count != count:
        raise RoadedgeError("{}: {} arrays but {} names".format(source, count, name_count))
    if reader.pos != len(data):
        raise RoadedgeError("{}: {} unexpected bytes after the array names".format(source, len(data) - reader.pos))
    return OrderedDict(zip(names, arrays))


def _read_array(reader, index):
    reader.what = "array {}".format(index)
    (magic,) = reader.unpack("I")
    if magic not in (V2_MAGIC, V3_MAGIC):
        raise RoadedgeError("{}: array {}: unknown NDArray magic 0x{:08x} (expected 0xf993fac9 or 0xf993faca)".format(
            reader.source, index, magic))
    (stype,) = reader.unpack("i")
    if stype != 0:
        raise RoadedgeError("{}: array {}: sparse storage type {} is not supported (dense only)".format(
            reader.source, index, stype))
    (ndim,) = reader.unpack("i")
    if ndim <= 0 and magic == V2_MAGIC or ndim < 0:
        return np.zeros((0,), dtype=np.float32)  # a 'none' array: nothing more is stored
    if ndim > MAX_NDIM:
        raise RoadedgeError("{}: array {}: {} dimensions (corrupt file? MXNet arrays have at most {})".format(
            reader.source, index, ndim, MAX_NDIM))
    shape = reader.unpack("{}q".format(ndim)) if ndim else ()
    if any(dim < 0 for dim in shape):
        raise RoadedgeError("{}: array {}: negative dimension in shape {} (corrupt file?)".format(
            reader.source, index, tuple(shape)))
    reader.unpack("ii")  # context: dev_type, dev_id
    (flag,) = reader.unpack("i")
    if flag not in DTYPES:
        raise RoadedgeError("{}: array {}: unknown dtype flag {}".format(reader.source, index, flag))
    dtype = np.dtype(DTYPES[flag]).newbyteorder("<")
    size = reduce(lambda a, b: a * b, shape, 1) * dtype.itemsize  # Python integers: no overflow, nothing allocated
    if size > reader.remaining():
        raise RoadedgeError("{}: truncated MXNet params file: array {} of shape {} ({}) needs {} bytes at byte {}, "
                            "only {} are left".format(reader.source, index, tuple(shape), DTYPES[flag], size, reader.pos,
                                                      reader.remaining()))
    raw = reader.take(size)
    try:
        return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    except ValueError as err:  # an empty array whose other dimensions are absurd: (0, 2**62)
        raise RoadedgeError("{}: array {}: shape {} is not a possible array ({}; corrupt file?)".format(
            reader.source, index, tuple(shape), err)) from None


def load_params(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise RoadedgeError("{}: cannot read params file: {}".format(path, err.strerror or err)) from None
    return loads_params(data, path)


def dumps_params(arrays):
    """OrderedDict/dict name -> numpy array -> bytes of a V2 .params file (CPU context)."""
    chunks = [struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays))]
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype not in FLAGS:
            raise RoadedgeError("{}: dtype {} cannot be stored in an MXNet params file".format(name, array.dtype))
        chunks.append(struct.pack("<Iii", V2_MAGIC, 0, array.ndim))
        chunks.append(struct.pack("<{}q".format(array.ndim), *array.shape))
        chunks.append(struct.pack("<iii", 1, 0, FLAGS[array.dtype]))
        chunks.append(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes())
    chunks.append(struct.pack("<Q", len(arrays)))
    for name in arrays:
        encoded = name.encode("utf-8")
        chunks.append(struct.pack("<Q", len(encoded)) + encoded)
    return b"".join(chunks)


def split_arg_aux(arrays):
    """{'arg:x': a, 'aux:y': b} -> ({'x': a}, {'y': b}); names without a prefix count as args."""
    args, aux = OrderedDict(), OrderedDict()
    for name, array in arrays.items():
        kind, sep, plain = name.partition(":")
        if sep and kind == "aux":
            aux[plain] = array
        else:
            args[plain if sep else name] = array
    return args, aux
