"""Load an MXNet SSD as SageMaker leaves it: a prefix (PREFIX-symbol.json + PREFIX-EPOCH.params) or model.tar.gz.

SageMaker's object detection writes `model_algo_1-symbol.json`,
`model_algo_1-0000.params` and `hyperparams.json` (string values) into
model.tar.gz; the tarball is read in place, nothing is extracted to disk.
"""
import hashlib
import json
import os
import re
import tarfile
import zlib

from roadedge.core.errors import RoadedgeError, os_reason, printable
from roadedge.core.mxnet_params import loads_params
from roadedge.core.mxnet_symbol import loads_symbol


class MXNetModel:
    """A symbol graph with its params; `params` keeps MXNet's 'arg:'/'aux:' names."""

    def __init__(self, name, graph, params, hyperparams, sources, epoch, params_source="<params>"):
        self.name = name  # the prefix's base name, e.g. model_algo_1
        self.graph = graph
        self.params = params
        self.hyperparams = hyperparams  # {} when there is no hyperparams.json
        self.sources = sources  # {file name: sha256 hex}
        self.epoch = epoch
        self.params_source = params_source  # where the params came from, for messages: PATH or ARCHIVE:MEMBER


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def load_model(path, epoch=0):
    if path.endswith((".tar.gz", ".tgz")) or (os.path.isfile(path) and tarfile.is_tarfile(path)):
        return _load_tarball(path, epoch)
    return _load_prefix(path, epoch)


def _read(path, what):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise RoadedgeError("{}: {} not found".format(path, what)) from None
    except OSError as err:
        raise RoadedgeError("{}: cannot read {}: {}".format(path, what, err.strerror or err)) from None


def _load_prefix(prefix, epoch):
    symbol_path = prefix + "-symbol.json"
    params_path = "%s-%04d.params" % (prefix, epoch)
    if not os.path.isfile(symbol_path) and os.path.isfile(params_path):
        raise RoadedgeError("{}: symbol file not found (the prefix has params but no -symbol.json)".format(symbol_path))
    if not os.path.isfile(symbol_path):
        raise RoadedgeError("{}: not found; expected a model prefix (PREFIX-symbol.json, PREFIX-{:04d}.params) "
                            "or a model.tar.gz".format(symbol_path, epoch))
    symbol_bytes = _read(symbol_path, "symbol file")
    params_bytes = _read(params_path, "params file (check --epoch)")
    hyper_path = os.path.join(os.path.dirname(prefix) or ".", "hyperparams.json")
    hyper_bytes = _read(hyper_path, "hyperparams") if os.path.isfile(hyper_path) else None
    sources = {os.path.basename(symbol_path): _sha256(symbol_bytes), os.path.basename(params_path): _sha256(params_bytes)}
    if hyper_bytes is not None:
        sources["hyperparams.json"] = _sha256(hyper_bytes)
    return MXNetModel(os.path.basename(prefix), loads_symbol(symbol_bytes, symbol_path),
                      loads_params(params_bytes, params_path), _hyperparams(hyper_bytes, hyper_path), sources, epoch,
                      params_path)


# what a damaged archive raises while tarfile reads it: bad headers, a gzip stream cut short or corrupt, I/O errors
ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


def _archive_error(path, err):
    if isinstance(err, OSError) and err.errno is not None:
        return RoadedgeError("{}: cannot read model archive ({})".format(path, os_reason(err)))
    reason = " ".join(str(err).split()) or type(err).__name__
    return RoadedgeError("{}: truncated or corrupt model.tar.gz ({}); expected a tar.gz archive with PREFIX-symbol.json and "
                         "PREFIX-EPOCH.params".format(path, reason))


def _outside(name):
    """True for a member path that would land outside a folder it was extracted into: absolute, '..', a drive."""
    parts = re.split(r"[\\/]", name)
    return name.startswith(("/", "\\")) or ".." in parts or bool(re.match(r"^[A-Za-z]:", name))


def _members(archive, path):
    """{base name: TarInfo} of the regular files; any path that would leave the archive's folder is refused."""
    members, where = {}, {}
    for member in archive.getmembers():
        if _outside(member.name) or (member.issym() or member.islnk()) and _outside(member.linkname):
            raise RoadedgeError("{}: member {!r}{} points outside the archive; refused (a model.tar.gz holds plain "
                                "files)".format(path, member.name, " -> {!r}".format(member.linkname) if member.linkname else ""))
        if not member.isfile():
            continue
        base = os.path.basename(member.name)
        if base in members:
            raise RoadedgeError("{}: two members named {} ({} and {}); expected one".format(
                path, printable(base), printable(where[base]), printable(member.name)))
        members[base], where[base] = member, member.name
    return members


def _load_tarball(path, epoch):
    try:
        with tarfile.open(path, "r:*") as archive:
            members = _members(archive, path)
            symbols = sorted(name for name in members if name.endswith("-symbol.json"))
            if not symbols:
                raise RoadedgeError("{}: no *-symbol.json inside (found: {})".format(
                    path, ", ".join(printable(name) for name in sorted(members)) or "nothing"))
            if len(symbols) > 1:
                symbols = [name for name in symbols if not name.startswith("deploy_")] or symbols
            name = symbols[0][: -len("-symbol.json")]
            params_name = "%s-%04d.params" % (name, epoch)
            if params_name not in members:
                found = sorted(printable(n) for n in members if n.endswith(".params"))
                raise RoadedgeError("{}: no {} inside (found params: {}; check --epoch)".format(
                    path, printable(params_name), ", ".join(found) or "none"))

            def read(member_name):
                return archive.extractfile(members[member_name]).read()

            symbol_bytes, params_bytes = read(symbols[0]), read(params_name)
            hyper_bytes = read("hyperparams.json") if "hyperparams.json" in members else None
    except ARCHIVE_ERRORS as err:
        raise _archive_error(path, err) from None
    where = path + ":"
    sources = {os.path.basename(path): _sha256(_read(path, "model archive")),
               symbols[0]: _sha256(symbol_bytes), params_name: _sha256(params_bytes)}
    params_source = where + printable(params_name)
    return MXNetModel(name, loads_symbol(symbol_bytes, where + printable(symbols[0])),
                      loads_params(params_bytes, params_source), _hyperparams(hyper_bytes, where + "hyperparams.json"),
                      sources, epoch, params_source)


def _hyperparams(data, where):
    if data is None:
        return {}
    try:
        values = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as err:  # not UTF-8, not JSON, nested absurdly deep
        raise RoadedgeError("{}: invalid JSON: {}".format(where, err if isinstance(err, ValueError) else
                                                           "nested too deeply")) from None
    if not isinstance(values, dict):
        raise RoadedgeError("{}: expected a JSON object of hyperparameters".format(where))
    return values
