"""Where model versions are published: an S3 prefix (`s3://bucket/prefix/`) or a local folder, same layout.

A version is three files side by side, NAME.xml, NAME.bin and NAME.json (roadedge.model/1 metadata with two more
fields: `version`, any text or number, and `sha256`, the hex sha256 of NAME.bin). They sit either directly under
the prefix (one version, replaced in place to publish the next) or one folder down (`prefix/<any>/NAME.*`, one
folder per version: the shadow can then ask for an older one). Without a desired version the highest version wins
(numbers compare as numbers: 10 > 9).
"""
import io
import json
import os
import re
import shutil

from roadedge.core.errors import RoadedgeError

MAX_METADATA_BYTES = 1 << 20
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def is_update_source(model):
    """Does `backend.model` name a source of versions (an S3 prefix or a folder) rather than one model file?"""
    if not isinstance(model, str):
        return False
    path = os.path.expanduser(model)
    return model.startswith("s3://") or os.path.isdir(path) and not os.path.isfile(os.path.join(path, "model_algo-1"))


def version_key(version):
    """Sort key: '1.10' > '1.9', 'v10' > 'v9' (runs of digits compare as numbers)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(version)) if part]


def candidate_from(metadata, name, where, files):
    """A version as the updater sees it: {name, version, sha256, where, files: {ext: location}}."""
    if not isinstance(metadata, dict):
        raise RoadedgeError("{}: expected a JSON object (roadedge.model/1 metadata)".format(where))
    version, sha256 = metadata.get("version"), metadata.get("sha256")
    if isinstance(version, bool) or not isinstance(version, (str, int, float)) or str(version) == "":
        raise RoadedgeError("{}: version: {!r}; expected the version's name or number".format(where, version))
    if not isinstance(sha256, str) or not re.match(r"^[0-9a-f]{64}$", sha256):
        raise RoadedgeError("{}: sha256: {!r}; expected the hex sha256 of {}.bin".format(where, sha256, name))
    return {"name": name, "version": str(version), "sha256": sha256, "where": where, "files": files}


def pick(candidates, desired=None):
    """The candidate with the desired version, else the highest version; None when there is none."""
    if desired is not None:
        matching = [c for c in candidates if c["version"] == str(desired)]
        return matching[-1] if matching else None
    return max(candidates, key=lambda c: version_key(c["version"])) if candidates else None


def _parse(data, where):
    if len(data) > MAX_METADATA_BYTES:
        raise RoadedgeError("{}: larger than {} bytes; expected model metadata JSON".format(where, MAX_METADATA_BYTES))
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise RoadedgeError("{}: not valid JSON ({})".format(where, err)) from None


class FolderSource(object):
    """A watched local folder (a USB stick, a synced directory)."""

    def __init__(self, folder):
        self.folder = os.path.abspath(os.path.expanduser(folder))
        self.where = self.folder

    def _groups(self):
        yield self.folder
        for entry in sorted(os.listdir(self.folder)):
            path = os.path.join(self.folder, entry)
            if os.path.isdir(path) and not entry.startswith("."):
                yield path

    def candidates(self):
        """Every complete version in the folder; (candidates, problems) where a problem is a one-line text."""
        found, problems = [], []
        try:
            groups = list(self._groups())
        except OSError as err:
            raise RoadedgeError("{}: cannot list the model folder ({})".format(self.folder, err.strerror)) from None
        for group in groups:
            for entry in sorted(os.listdir(group)):
                stem, ext = os.path.splitext(entry)
                path = os.path.join(group, entry)
                if ext != ".json" or not all(os.path.isfile(os.path.join(group, stem + e)) for e in (".xml", ".bin")):
                    continue
                try:
                    with io.open(path, "rb") as handle:
                        data = handle.read(MAX_METADATA_BYTES + 1)
                    files = {e: os.path.join(group, stem + e) for e in (".xml", ".bin", ".json")}
                    found.append(candidate_from(_parse(data, path), stem, path, files))
                except RoadedgeError as err:
                    problems.append(str(err))
                except OSError as err:
                    problems.append("{}: cannot read ({})".format(path, err.strerror))
        return found, problems

    def download(self, candidate, folder):
        """Copy a version's three files into `folder`; the .xml's path there."""
        for ext, path in candidate["files"].items():
            try:
                shutil.copyfile(path, os.path.join(folder, candidate["name"] + ext))
            except OSError as err:
                raise RoadedgeError("{}: cannot copy ({})".format(path, err.strerror)) from None
        return os.path.join(folder, candidate["name"] + ".xml")


class S3Source(object):
    """An S3 prefix through boto3 (any S3 API: `endpoint_url` for moto, MinIO or a VPC endpoint)."""

    def __init__(self, uri, endpoint_url="", region=""):
        rest = uri[len("s3://"):]
        self.bucket, _, prefix = rest.partition("/")
        if not _BUCKET.match(self.bucket):
            raise RoadedgeError("backend.model {}: '{}' is not a bucket name; expected s3://bucket/prefix/".format(
                uri, self.bucket))
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.where = uri
        self.endpoint_url, self.region = endpoint_url or None, region or None
        self.client = None
        self.metadata_cache = {}  # key -> (etag, parsed metadata): a poll downloads only what changed

    def _client(self):
        if self.client is None:
            import boto3
            from botocore.config import Config

            config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=30)
            self.client = boto3.session.Session().client("s3", region_name=self.region,
                                                          endpoint_url=self.endpoint_url, config=config)
        return self.client

    def _fail(self, what, err):
        return RoadedgeError("{}: cannot {} ({})".format(self.where, what, str(err).splitlines()[0][:300]))

    def _listing(self):
        objects = {}
        try:
            for page in self._client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", ()):
                    objects[item["Key"]] = item.get("ETag", "")
        except Exception as err:  # botocore's errors: no credentials, no bucket, endpoint out of reach
            raise self._fail("list the model versions", err) from None
        return objects

    def candidates(self):
        objects = self._listing()
        found, problems = [], []
        for key in sorted(objects):
            rest = key[len(self.prefix):]
            stem, ext = os.path.splitext(rest)
            if ext != ".json" or rest.count("/") > 1 or not all(key[:-5] + e in objects for e in (".xml", ".bin")):
                continue
            where = "s3://{}/{}".format(self.bucket, key)
            try:
                cached = self.metadata_cache.get(key)
                if cached is None or cached[0] != objects[key]:
                    body = self._client().get_object(Bucket=self.bucket, Key=key)["Body"].read(MAX_METADATA_BYTES + 1)
                    cached = self.metadata_cache[key] = (objects[key], _parse(body, where))
                files = {e: key[:-5] + e for e in (".xml", ".bin", ".json")}
                found.append(candidate_from(cached[1], os.path.basename(stem), where, files))
            except RoadedgeError as err:
                problems.append(str(err))
            except Exception as err:  # the object went away between listing and reading, access denied
                problems.append(str(self._fail("read " + key, err)))
        return found, problems

    def download(self, candidate, folder):
        for ext, key in candidate["files"].items():
            try:
                self._client().download_file(self.bucket, key, os.path.join(folder, candidate["name"] + ext))
            except Exception as err:
                raise self._fail("download " + key, err) from None
        return os.path.join(folder, candidate["name"] + ".xml")


def open_source(model, settings):
    if model.startswith("s3://"):
        return S3Source(model, settings.get("endpoint_url", ""), settings.get("region", ""))
    return FolderSource(model)
