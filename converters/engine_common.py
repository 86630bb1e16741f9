"""What every external engine (mo, deeplens) checks before it runs: one message per problem, naming the value."""
import os

from roadedge.core.errors import RoadedgeError

PRECISIONS = ("FP32", "FP16")


def check_engine_call(symbol_path, params_path, input_shape, name, precision, max_side=None, tool="the engine"):
    """Returns (height, width) as ints, or raises RoadedgeError for a bad shape, precision, name or missing file."""
    height, width = (int(v) for v in input_shape)
    if height <= 0 or width <= 0 or (max_side is not None and max(height, width) > max_side):
        limit = " of at most {} pixels a side".format(max_side) if max_side else ""
        raise RoadedgeError("input shape {}x{}: {} takes positive inputs{}".format(height, width, tool, limit))
    if precision not in PRECISIONS:
        raise RoadedgeError("precision {!r}: expected one of {}".format(precision, ", ".join(PRECISIONS)))
    if not name or os.sep in name or name.startswith("."):
        raise RoadedgeError("IR name {!r}: expected a plain file name".format(name))
    for path in (symbol_path, params_path):
        if not os.path.isfile(path):
            raise RoadedgeError("{}: no such file".format(path))
    return height, width
