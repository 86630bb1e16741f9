"""The walk over an MXNet graph that builds the OpenVINO model, and what every op converter shares.

`Context` holds the OpenVINO outputs made so far, one list per MXNet node,
and hands an op converter its inputs: computed tensors (`data`) or learned
weights (`weight`), the latter read from the params and checked against the
shape the graph implies. Converters register themselves by op name in
`CONVERTERS` with `@converts(...)`; every problem becomes a one-line
RoadedgeError naming the node and its op.
"""
import numpy as np
import openvino as ov
import openvino.opset13 as ops
from openvino import passes

from converters.openvino_native.fold_scale import fold_channel_scales
from roadedge.core.errors import RoadedgeError, openvino_reason, printable
from roadedge.core.mxnet_symbol import attr_bool, attr_float, attr_int, attr_tuple

CONVERTERS = {}
DATA_INPUT = "data"
TRAINING_OPS = ("_contrib_MultiBoxTarget", "MakeLoss", "smooth_l1", "SoftmaxCrossEntropy", "LinearRegressionOutput")


def converts(*op_names):
    def register(function):
        for name in op_names:
            CONVERTERS[name] = function
        return function
    return register


def supported_ops():
    return sorted(CONVERTERS)


def const(value, dtype=np.float32):
    return ops.constant(np.asarray(value, dtype=dtype))


def ints(values):
    return const(list(values), np.int64)


def shape_text(shape):
    return "(" + ", ".join(str(int(v)) for v in shape) + ("," if len(shape) == 1 else "") + ")"


class Context:
    def __init__(self, graph, arg_params, aux_params, input_shape, params_source=None):
        self.graph = graph
        self.params_source = params_source  # the params file, named in errors about weights
        self.arg_params = dict(arg_params or {})
        self.aux_params = dict(aux_params or {})
        try:
            self.input_shape = tuple(int(v) for v in input_shape)
        except (TypeError, ValueError):
            self.input_shape = ()
        if not self.input_shape or min(self.input_shape) < 1:
            raise RoadedgeError("input shape {!r}: expected positive sizes such as (1, 3, 512, 512) for {!r} (N, C, H, W)".format(
                input_shape, DATA_INPUT))
        self.parameter = None
        self.outputs = {}  # node index -> list of ov.Output
        self.constants = {}  # node index -> ov.Output of a params entry used as a tensor
        self.named = set()  # friendly names given after MXNet nodes

    # ---- errors and attributes -------------------------------------------------------------------------------
    def fail(self, node, message, about_weights=False):
        """A one-line error naming the file to look at (the params for weights, else the symbol), the node and its op."""
        source = self.params_source if about_weights and self.params_source else self.graph.source
        where = "" if not source or source.startswith("<") else source + ": "
        return RoadedgeError("{}node {!r} (op {}): {}".format(where, node.name, printable(node.op), message))

    def attr(self, node, key, default=None, kind="str"):
        """An attribute with MXNet's default; bad text becomes an error that names the node."""
        try:
            if kind == "bool":
                return attr_bool(node, key, default)
            if kind == "float":
                return attr_float(node, key, default)
            if kind == "int":
                return attr_int(node, key, default)
            if kind == "ints":
                return attr_tuple(node, key, default, kind=int)
            if kind == "floats":
                return attr_tuple(node, key, default, kind=float)
        except RoadedgeError as err:
            raise self.fail(node, str(err).split(": ", 1)[-1]) from None
        except (TypeError, ValueError):
            raise self.fail(node, "attribute {}={!r} is not {}".format(key, node.attrs.get(key), kind)) from None
        value = node.attrs.get(key)
        return default if value is None else value.strip().strip("'\"")

    # ---- inputs -----------------------------------------------------------------------------------------------
    def input_node(self, node, position):
        if position >= len(node.inputs):
            raise self.fail(node, "expected at least {} inputs, the graph gives {}".format(position + 1, len(node.inputs)))
        return self.graph.nodes[node.inputs[position][0]]

    def data(self, node, position=0):
        """The tensor feeding input `position`: a computed output, the data input, or a params entry as a constant."""
        source = self.input_node(node, position)
        index, output = node.inputs[position][:2]
        if source.op != "null":
            outputs = self.outputs[index]
            if output >= len(outputs):
                raise self.fail(node, "input {} is output {} of node {!r}, which has {} output(s)".format(
                    position, output, source.name, len(outputs)))
            return outputs[output]
        if source.name == DATA_INPUT:
            return self.parameter.output(0)
        if source.name not in self.arg_params and source.name not in self.aux_params:
            raise self.fail(node, "input {!r} is neither the image input (which must be named {!r}) nor a weight in "
                                  "the params".format(source.name, DATA_INPUT), about_weights=True)
        if index not in self.constants:
            declared = self.attr(source, "__shape__", None, "ints")
            value = self.weight(node, position, declared if declared and all(declared) else None)
            self.constants[index] = const(value).output(0)
        return self.constants[index]

    def weight(self, node, position, expected=None):
        """float32 numpy value of the params entry feeding input `position`; `expected` is the shape the graph implies."""
        source = self.input_node(node, position)
        if source.op != "null" or source.name == DATA_INPUT:
            raise self.fail(node, "input {} must be a learned parameter, but it is computed by {!r} ({})".format(
                position, source.name, source.op))
        if source.name in self.arg_params:
            value = self.arg_params[source.name]
        elif source.name in self.aux_params:
            value = self.aux_params[source.name]
        else:
            raise self.fail(node, "weight {!r} is missing from the params".format(source.name), about_weights=True)
        value = np.asarray(value)
        if expected is not None and tuple(value.shape) != tuple(expected):
            raise self.fail(node, "weight {!r} has shape {} in the params but the graph needs {}".format(
                source.name, shape_text(value.shape), shape_text(expected)), about_weights=True)
        return np.ascontiguousarray(value, dtype=np.float32)

    def shape(self, output):
        partial = output.get_partial_shape()
        if partial.is_dynamic:
            return None
        return tuple(int(d) for d in output.get_shape())

    # ---- the walk ---------------------------------------------------------------------------------------------
    def convert(self, name):
        graph = self.graph
        self.parameter = ops.parameter(list(self.input_shape), np.float32, name=DATA_INPUT)
        self.parameter.output(0).get_tensor().set_names({DATA_INPUT})
        needed = graph.reachable()
        for index in needed:  # every op first: an unsupported op is the first thing to hear about
            node = graph.nodes[index]
            if node.op != "null" and node.op not in CONVERTERS:
                hint = " (a training-only op: convert the deploy graph, see `roadedge convert deploy`)" \
                    if node.op in TRAINING_OPS else ""
                raise self.fail(node, "unsupported op{}; supported: {}".format(hint, ", ".join(supported_ops())))
        for index in needed:
            node = graph.nodes[index]
            if node.op == "null":
                continue
            try:
                produced = CONVERTERS[node.op](self, node)
            except RoadedgeError:
                raise
            except RuntimeError as err:  # OpenVINO's own shape checks
                raise self.fail(node, "OpenVINO rejected the conversion: {}".format(openvino_reason(err))) from None
            self.outputs[index] = [p.output(0) if isinstance(p, ov.Node) else p for p in produced]
            self._name(self.outputs[index][0].get_node(), node.name)
        if not any(graph.nodes[i].name == DATA_INPUT and graph.nodes[i].op == "null" for i in needed):
            raise RoadedgeError("{}: the graph has no input named {!r}".format(graph.source, DATA_INPUT))
        model = ov.Model(self._results(), [self.parameter], name)
        fold_channel_scales(model)  # BatchNorm's multiply into the convolution before it (fold_scale.py)
        manager = passes.Manager()  # anchors, variances and their reshapes become single constants
        manager.register_pass(passes.ConstantFolding())
        manager.run_passes(model)
        return model

    def _name(self, ov_node, name):
        """The OpenVINO node computing an MXNet node's output takes its name (not the input, weights or a shared node)."""
        if ov_node.get_type_name() not in ("Parameter", "Constant") and ov_node.get_friendly_name() not in self.named:
            self.named.add(name)
            ov_node.set_friendly_name(name)

    def _results(self):
        results, used = [], set()
        for index, output in self.graph.heads:
            node = self.graph.nodes[index]
            if node.op == "null":
                raise RoadedgeError("{}: output {!r} is an input, not computed".format(self.graph.source, node.name))
            if output >= len(self.outputs[index]):
                raise self.fail(node, "a head is its output {}, but it has {} output(s)".format(
                    output, len(self.outputs[index])))
            name = node.name if node.name not in used else "{}_output{}".format(node.name, output)
            used.add(name)
            tensor = self.outputs[index][output]
            if tensor.get_node().get_type_name() in ("Parameter", "Constant"):
                tensor = ops.convert(tensor, tensor.get_element_type()).output(0)  # its own tensor, its own name
            result = ops.result(tensor)
            result.set_friendly_name(name)
            result.output(0).get_tensor().set_names({name})
            results.append(result)
        return results
