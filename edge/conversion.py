"""The runtime's one door into the converters: `--model model.tar.gz` (or an MXNet prefix) converted in memory.

A SageMaker semantic-segmentation artefact (hyperparams.json with an algorithm, model_algo-1) is rebuilt natively
(converters.gluoncv_seg) with the metadata `roadedge convert optimize` would write.

A SageMaker training graph becomes its deploy graph (converters.ssd_deploy, what MXNet's deploy.py does) with
the labels and preprocessing `roadedge convert` would record; the OpenVINO backend then converts it with
converters.openvino_native, the MXNet backend binds it with MXNet itself. No other runtime module imports
the converters (the import contracts in .importlinter say so).
"""
from collections import namedtuple

# name: the prefix's base name; graph: the deploy graph (roadedge.core.mxnet_symbol.Graph); args/aux: name -> array;
# labels: class codes in class-id order; preprocessing: the roadedge.model/1 record; sha256: of the .params
DeployModel = namedtuple("DeployModel", "name graph args aux labels preprocessing hyperparams sha256")


def load_deploy(path, epoch=0, labels=None):
    """A SageMaker model.tar.gz or MXNet prefix -> DeployModel (RoadedgeError naming the file when unreadable)."""
    from converters.ssd_deploy import num_classes, to_deploy
    from roadedge.core.model_metadata import default_preprocessing, labels_for
    from roadedge.core.mxnet_params import split_arg_aux
    from roadedge.core.sagemaker_model import load_model

    loaded = load_model(path, epoch)
    deploy = to_deploy(loaded.graph)
    head = deploy.nodes[deploy.heads[0][0]]
    names = labels_for(num_classes(deploy, head.inputs[0]) or 0, labels or None, loaded.hyperparams)
    args, aux = split_arg_aux(loaded.params)
    digest = next((sha for name, sha in sorted(loaded.sources.items()) if name.endswith(".params")), "0" * 64)
    return DeployModel(loaded.name, deploy, args, aux, names, default_preprocessing(deploy), loaded.hyperparams,
                       digest)


def to_openvino(model, input_size):
    """The DeployModel as an openvino.Model for inputs of `input_size` (width, height), NCHW float."""
    from converters.openvino_native import convert_graph

    width, height = (int(v) for v in input_size)
    return convert_graph(model.graph, model.args, model.aux, (1, 3, height, width), model.name)


def is_segmentation(path):
    """True for a SageMaker segmentation artefact (tarball or folder); never raises."""
    from converters.gluoncv_seg.artefact import is_segmentation_artefact

    return is_segmentation_artefact(path)


def load_segmentation(path, input_size=None, labels=None):
    """(openvino.Model, roadedge.model/1 metadata) of a SageMaker segmentation artefact; `input_size` (width,
    height), default the artefact's crop_size. RoadedgeError naming the file and field when it cannot be built."""
    from converters.gluoncv_seg.optimize import segmentation_model

    shape = (int(input_size[1]), int(input_size[0])) if input_size else None
    return segmentation_model(path, shape, list(labels) if labels else None)
