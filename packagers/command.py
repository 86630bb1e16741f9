"""`roadedge package lambda OUT.zip`: the decoding Lambda's deployment zip (packagers/lambda_zip.py)."""
import os

from roadedge.core.commands import lazy_handler


def register(subparsers):
    package = subparsers.add_parser("package", help="build deployment packages for the cloud half",
                                    description="Deployment packages for what runs off the vehicle.")
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


def lambda_command(args):
    from packagers import lambda_zip as lp
    from roadedge.core import fsutil
    from roadedge.core.errors import RoadedgeError, file_error

    out = os.path.abspath(args.out)
    platforms = args.platform or [lp.DEFAULT_PLATFORM]
    if not out.endswith(".zip"):
        raise RoadedgeError("{}: expected a name ending in .zip".format(args.out))
    lp.check_target(args.python_version, platforms)
    if os.path.isdir(out):
        raise RoadedgeError("{}: is a folder; expected the zip file to write".format(args.out))
    if os.path.lexists(out) and not args.overwrite:
        raise RoadedgeError("{}: already exists (pass --overwrite to replace it)".format(args.out))
    fsutil.check_writable_folder(os.path.dirname(out), out)
    project = lp.project_files()
    with fsutil.staging_dir(out) as staging:
        site = os.path.join(staging, "site")
        lp.pip_install(site, args.python_version, platforms)
        installed = lp.installed_files(site)
        versions = lp.installed_versions(site)
        try:
            with fsutil.atomic_file(out) as handle:
                lp.write_zip(handle, project + installed)
        except OSError as err:
            raise file_error(out, err, "write") from None
    print("wrote {} ({:.1f} MB, {} files: {} project files, {} for Python {} on {}); handler {}".format(
        args.out, os.path.getsize(out) / 1e6, len(project) + len(installed), len(project),
        ", ".join("{} {}".format(name, version) for name, version in sorted(versions.items())), args.python_version,
        ", ".join(platforms), lp.HANDLER))
    return 0
