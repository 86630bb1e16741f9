"""`roadedge package lambda|deeplens|greengrass`: deployment packages (packagers/lambda_zip.py, deeplens.py,
greengrass.py)."""
import os

from roadedge.core.commands import lazy_handler


def register(subparsers):
    package = subparsers.add_parser("package", help="build deployment packages (decoding Lambda, DeepLens, Greengrass v2)",
                                    description="Deployment packages: the cloud's decoding Lambda, the DeepLens project "
                                    "Lambda with its model, and a Greengrass v2 component.")
    commands = package.add_subparsers(dest="package_command", metavar="SUBCOMMAND")
    commands.required = True
    p = commands.add_parser("lambda", help="the decoding Lambda's deployment zip",
                            description="Build the zip of the Lambda that decodes the masks `roadedge cloud segment` "
                            "writes to S3: the handler (cloud.lambda_decode.handler.handler), the project modules it "
                            "imports, and numpy and Pillow for the Lambda's Python and platform (boto3 is the "
                            "runtime's). Needs pip and access to the package index.")
    p.add_argument("out", metavar="OUT.zip", help="the zip to write")
    p.add_argument("--python-version", default="3.12", metavar="X.Y",
                   help="the Lambda runtime's Python (default: %(default)s, runtime python3.12)")
    p.add_argument("--platform", action="append", metavar="TAG",
                   help="wheel platform tag; repeat for several (default: manylinux2014_x86_64; "
                   "manylinux2014_aarch64 for an arm64 Lambda)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.zip if it exists")
    p.set_defaults(handler=lazy_handler("packagers.command", "lambda_command"))

    p = commands.add_parser("deeplens", help="the DeepLens project Lambda's zip and model.tar.gz",
                            description="Write OUT_DIR/roadedge-deeplens-lambda.zip (lambda_function.py, the runtime "
                            "modules a DeepLens imports, the device profiles, and PyYAML, paho-mqtt and "
                            "prometheus-client for Python 3.7, pure Python; numpy and cv2 are the device's) and "
                            "OUT_DIR/model.tar.gz (the IR: .xml, .bin and the .json beside it), for the DeepLens "
                            "console: handler lambda_function.function_handler, Python 3.7, long-lived. Needs pip and "
                            "access to the package index.")
    p.add_argument("out", metavar="OUT_DIR", help="the folder to write (must not exist unless --overwrite)")
    p.add_argument("--model", metavar="IR.xml", help="the IR to put in model.tar.gz (default: the bundled detector)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    p.set_defaults(handler=lazy_handler("packagers.command", "deeplens_command"))

    p = commands.add_parser("greengrass", help="a Greengrass v2 component: recipe, wheel and model",
                            description="Write a Greengrass v2 component: OUT_DIR/recipes/NAME-VERSION.yaml and "
                            "OUT_DIR/artifacts/NAME/VERSION/ (a wheel of roadedge and model.zip with the IR). The "
                            "recipe installs the wheel into a virtual environment and runs `roadedge run` with the "
                            "greengrass sink (IPC PublishToIoTCore, allowed on the runtime's topics only).")
    p.add_argument("out", metavar="OUT_DIR", help="the folder to write (must not exist unless --overwrite)")
    p.add_argument("--name", required=True, metavar="NAME", help="component name, e.g. com.example.roadedge")
    p.add_argument("--version", required=True, metavar="X.Y.Z", help="component version (semantic version)")
    p.add_argument("--model", metavar="IR.xml", help="the IR the component runs (default: the bundled detector)")
    p.add_argument("--artifact-bucket", required=True, metavar="BUCKET",
                   help="the S3 bucket the artefacts are uploaded to: the recipe's URIs are s3://BUCKET/NAME/VERSION/...")
    p.add_argument("--publisher", default="roadedge", help="ComponentPublisher (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    p.set_defaults(handler=lazy_handler("packagers.command", "greengrass_command"))


def lambda_command(args):
    from packagers import common
    from packagers import lambda_zip as lp
    from roadedge.core import fsutil
    from roadedge.core.errors import RoadedgeError, file_error

    out = os.path.abspath(args.out)
    platforms = args.platform or [lp.DEFAULT_PLATFORM]
    if not out.endswith(".zip"):
        raise RoadedgeError("{}: expected a name ending in .zip".format(args.out))
    common.check_target(args.python_version, platforms)
    if os.path.isdir(out):
        raise RoadedgeError("{}: is a folder; expected the zip file to write".format(args.out))
    if os.path.lexists(out) and not args.overwrite:
        raise RoadedgeError("{}: already exists (pass --overwrite to replace it)".format(args.out))
    fsutil.check_writable_folder(os.path.dirname(out), out)
    project = lp.project_files()
    with fsutil.staging_dir(out) as staging:
        site = os.path.join(staging, "site")
        lp.pip_install(site, args.python_version, platforms)
        installed = common.installed_files(site)
        versions = common.installed_versions(site)
        try:
            with fsutil.atomic_file(out) as handle:
                common.write_zip(handle, project + installed)
        except OSError as err:
            raise file_error(out, err, "write") from None
    print("wrote {} ({:.1f} MB, {} files: {} project files, {} for Python {} on {}); handler {}".format(
        args.out, os.path.getsize(out) / 1e6, len(project) + len(installed), len(project),
        ", ".join("{} {}".format(name, version) for name, version in sorted(versions.items())), args.python_version,
        ", ".join(platforms), lp.HANDLER))
    return 0


def deeplens_command(args):
    from packagers import deeplens

    written = deeplens.build(args.out, model=args.model, overwrite=args.overwrite)
    print(deeplens.describe(args.out, written))
    return 0


def greengrass_command(args):
    from packagers import greengrass

    written = greengrass.build(args.out, args.name, args.version, model=args.model, bucket=args.artifact_bucket,
                               publisher=args.publisher, overwrite=args.overwrite)
    print(greengrass.describe(args.out, written))
    return 0
