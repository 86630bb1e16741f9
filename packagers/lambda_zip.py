"""The decoding Lambda's deployment zip: the handler's package, the project modules it imports (only those, found by
following its imports), their data files, and the third-party packages the Lambda runtime lacks (numpy, Pillow),
installed by pip for the target Python and platform.

Pillow reads the mask PNGs rather than a PNG reader of our own: the masks are written by Pillow, and it reads every
filter, bit depth and interlacing a PNG may use, where a reader of our own would have to be proven on all of them. It
costs 8 MB of the zip (22 MB unpacked, most of it the image libraries it links) beside numpy's 15 MB (51 MB): with
both the zip is about 23 MB, 74 MB unpacked, within Lambda's 50 MB upload and 250 MB unpacked limits. boto3 and
botocore are not carried: the Lambda runtime has them.
"""
from packagers import common
from roadedge.core.errors import RoadedgeError

HANDLER_MODULE = "cloud.lambda_decode.handler"
HANDLER = HANDLER_MODULE + ".handler"
THIRD_PARTY = {"numpy": "numpy", "PIL": "Pillow"}  # import name -> distribution pip installs into the zip
IN_THE_RUNTIME = ("boto3", "botocore")
PACKAGE_DATA = {"roadedge.core": ("data/*.json",)}  # as setup.py's package_data, for the packages the zip carries
DEFAULT_PYTHON = "3.12"
DEFAULT_PLATFORM = "manylinux2014_x86_64"


def project_root():
    return common.project_root()


def project_files(root=None):
    """[(path, name in the zip)] of the project modules the handler imports, and their packages' data files.

    RoadedgeError when the handler imports a third-party package the zip does not carry."""
    files, outside = common.follow_imports([HANDLER_MODULE], root, PACKAGE_DATA)
    outside = sorted(outside - set(THIRD_PARTY) - set(IN_THE_RUNTIME))
    if outside:
        raise RoadedgeError("{} imports {}, which the Lambda zip does not carry: add {} to THIRD_PARTY in {}".format(
            HANDLER_MODULE, ", ".join(outside), "it" if len(outside) == 1 else "them", __file__))
    return files


def pip_install(folder, python_version, platforms, requirements=None):
    """Install the third-party packages for the target into `folder` (binary wheels only: nothing is compiled)."""
    common.pip_install(folder, list(requirements or sorted(THIRD_PARTY.values())), python_version, platforms)
