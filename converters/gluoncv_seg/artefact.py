"""SageMaker's semantic-segmentation artefact: model.tar.gz (or a folder) with hyperparams.json and model_algo-1.

hyperparams.json holds string values ("algorithm": "psp", "backbone":
"resnet-50", "num_classes": "21", "crop_size": "240", ...); model_algo-1 is
the network's Gluon parameters as `save_parameters` writes them (the NDArray
.params container, structural names such as `layer1.0.bn1.running_mean`, no
arg:/aux: prefixes). The tarball is read in place.
"""
import hashlib
import json
import os
import re
import tarfile

from roadedge.core.errors import RoadedgeError, printable
from roadedge.core.mxnet_params import loads_params
from roadedge.core.sagemaker_model import ARCHIVE_ERRORS, _members

HYPERPARAMS = "hyperparams.json"
PARAMS = "model_algo-1"
ALGORITHMS = ("fcn", "psp", "deeplab")
GLUONCV_BACKBONES = {"resnet-50": "resnet50", "resnet-101": "resnet101"}  # SageMaker's names -> GluonCV's (v1s)


class SegArtefact:
    """hyperparams (dict), params (OrderedDict name -> numpy array) and where they came from."""

    def __init__(self, path, hyperparams, params, sources, hyperparams_source, params_source, params_bytes):
        self.path = path
        self.hyperparams = hyperparams
        self.params = params
        self.sources = sources  # {file name: sha256 hex}
        self.hyperparams_source = hyperparams_source  # PATH or ARCHIVE:hyperparams.json, named in errors
        self.params_source = params_source
        self.params_bytes = params_bytes  # model_algo-1 as stored (the mxnet engine hands it to Gluon)
        self.algorithm = _algorithm(hyperparams, hyperparams_source)
        self.backbone = _backbone(hyperparams, hyperparams_source)
        self.num_classes = _positive_int(hyperparams, "num_classes", hyperparams_source, required=False)
        self.crop_size = _positive_int(hyperparams, "crop_size", hyperparams_source, required=False)

    @property
    def name(self):
        """The IR's default name: algorithm_backbone, e.g. psp_resnet-50."""
        return re.sub(r"[^A-Za-z0-9._-]", "_", "{}_{}".format(self.algorithm, self.backbone))

    @property
    def gluoncv_backbone(self):
        """GluonCV's name for the backbone (resnet50, resnet101) when the parameters are that network's widths and
        depths, else None: a backbone of its own (a demo model), which gluon_custom assembles from GluonCV's parts."""
        from converters.gluoncv_seg.backbone import describe

        name = GLUONCV_BACKBONES.get(self.backbone.lower().replace("_", "-"))
        if name is None:
            return None
        try:
            structure = describe(self.params, self.params_source)
        except RoadedgeError:
            return name  # GluonCV's loader names what is wrong
        blocks = {"resnet50": [3, 4, 6, 3], "resnet101": [3, 4, 23, 3]}[name]

        def width(key, axis=0):
            shape = getattr(self.params.get(key), "shape", ())
            return shape[axis] if len(shape) > axis else None

        standard = (structure == {"stem": "deep", "block": "bottleneck", "blocks": blocks}
                    and width("conv1.0.weight") == 64 and width("layer4.0.conv3.weight") == 2048
                    and width("head.block.0.weight") == {"fcn": 512, "psp": 512, "deeplab": 256}[self.algorithm])
        return name if standard else None

    def where(self, field):
        return "{}: {}".format(self.hyperparams_source, field)


def _field(hyperparams, key, where):
    value = hyperparams.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RoadedgeError("{}: {} {}: expected text (SageMaker writes every hyperparameter as a string)".format(
            where, key, printable(json.dumps(value))[:60]))
    return str(value).strip()


def _algorithm(hyperparams, where):
    value = _field(hyperparams, "algorithm", where)
    if value is None:
        raise RoadedgeError("{}: field 'algorithm' missing; expected one of {}".format(where, ", ".join(ALGORITHMS)))
    if value.lower() not in ALGORITHMS:
        raise RoadedgeError("{}: algorithm {!r}: expected one of {} (GluonCV FCN, PSPNet, DeepLabV3)".format(
            where, value, ", ".join(ALGORITHMS)))
    return value.lower()


def _backbone(hyperparams, where):
    value = _field(hyperparams, "backbone", where)
    if value is None:
        return "resnet-50"  # SageMaker's default
    if not value or not value.isprintable():
        raise RoadedgeError("{}: backbone {!r}: expected a name such as resnet-50 or resnet-101".format(where, value))
    return value


def _positive_int(hyperparams, key, where, required):
    value = _field(hyperparams, key, where)
    if value is None:
        if required:
            raise RoadedgeError("{}: field '{}' missing".format(where, key))
        return None
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is None or not number.is_integer() or not 0 < number <= 1 << 20:
        raise RoadedgeError("{}: {} {!r}: expected a positive whole number".format(where, key, value))
    return int(number)


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _is_tarball(path):
    return os.path.isfile(path) and (path.endswith((".tar.gz", ".tgz")) or tarfile.is_tarfile(path))


def is_segmentation_artefact(path):
    """True for a folder or tarball that holds model_algo-1, or a hyperparams.json with an `algorithm` (SageMaker's
    object detection has none): such a model is converted, or refused, as a segmentation model. Never raises."""
    hyper = None
    try:
        if os.path.isdir(path):
            if os.path.isfile(os.path.join(path, PARAMS)):
                return True
            if os.path.isfile(os.path.join(path, HYPERPARAMS)):
                with open(os.path.join(path, HYPERPARAMS), "rb") as handle:
                    hyper = handle.read()
        elif _is_tarball(path):
            with tarfile.open(path, "r:*") as archive:
                members = {os.path.basename(m.name): m for m in archive.getmembers() if m.isfile()}
                if PARAMS in members:
                    return True
                if HYPERPARAMS in members:
                    hyper = archive.extractfile(members[HYPERPARAMS]).read()
        if hyper is None:
            return False
        values = json.loads(hyper.decode("utf-8"))
    except (ARCHIVE_ERRORS + (ValueError, RecursionError)):
        return False
    return isinstance(values, dict) and "algorithm" in values


def _read_file(path, what):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise RoadedgeError("{}: {} not found (a SageMaker segmentation model holds {} and {})".format(
            path, what, HYPERPARAMS, PARAMS)) from None
    except OSError as err:
        raise RoadedgeError("{}: cannot read {}: {}".format(path, what, err.strerror or err)) from None


def load_artefact(path):
    """A SegArtefact from model.tar.gz or a folder; one-line RoadedgeError naming the file and field otherwise."""
    if os.path.isdir(path):
        hyper_source, params_source = os.path.join(path, HYPERPARAMS), os.path.join(path, PARAMS)
        hyper_bytes = _read_file(hyper_source, "hyperparameters")
        params_bytes = _read_file(params_source, "parameters (Gluon save_parameters)")
        sources = {HYPERPARAMS: _sha256(hyper_bytes), PARAMS: _sha256(params_bytes)}
    elif _is_tarball(path):
        try:
            with tarfile.open(path, "r:*") as archive:
                members = _members(archive, path)
                for needed in (HYPERPARAMS, PARAMS):
                    if needed not in members:
                        raise RoadedgeError("{}: no {} inside (found: {}); expected SageMaker's segmentation model "
                                            "({} and {})".format(path, needed, ", ".join(
                                                printable(n) for n in sorted(members)) or "nothing", HYPERPARAMS, PARAMS))
                hyper_bytes = archive.extractfile(members[HYPERPARAMS]).read()
                params_bytes = archive.extractfile(members[PARAMS]).read()
        except ARCHIVE_ERRORS as err:
            raise RoadedgeError("{}: truncated or corrupt model.tar.gz ({})".format(
                path, " ".join(str(err).split()) or type(err).__name__)) from None
        hyper_source, params_source = path + ":" + HYPERPARAMS, path + ":" + PARAMS
        sources = {os.path.basename(path): _sha256(_read_file(path, "model archive")), HYPERPARAMS: _sha256(hyper_bytes),
                   PARAMS: _sha256(params_bytes)}
    else:
        raise RoadedgeError("{}: not found; expected SageMaker's segmentation model.tar.gz or a folder with {} and "
                            "{}".format(path, HYPERPARAMS, PARAMS))
    try:
        hyperparams = json.loads(hyper_bytes.decode("utf-8"))
    except (ValueError, RecursionError) as err:
        raise RoadedgeError("{}: invalid JSON ({})".format(hyper_source, err if isinstance(err, ValueError) else
                                                           "nested too deeply")) from None
    if not isinstance(hyperparams, dict):
        raise RoadedgeError("{}: expected a JSON object of hyperparameters".format(hyper_source))
    params = loads_params(params_bytes, params_source)
    return SegArtefact(path, hyperparams, params, sources, hyper_source, params_source, params_bytes)
