"""`roadedge` command line: one subcommand per job, each registered by its own module.

Command modules expose `register(subparsers)`; they import their heavy
dependencies inside the handler so `roadedge --help` stays fast and a missing
optional package only affects the command that needs it.
"""
import argparse
import importlib
import signal
import sys

from roadedge import __version__
from roadedge.core.errors import RoadedgeError, Terminated, ValidationFailed, os_reason

COMMAND_MODULES = (
    "edge.run_command",
    "edge.synth.command",
    "edge.kvs.command",
    "edge.defects.command",
    "converters.dataset_command",
    "converters.convert_command",
    "training.command",
    "training.quantize_command",
    "cloud.serve.command",
    "cloud.segment.command",
    "packagers.command",
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="roadedge",
        description="Road-damage detection on the edge: synthetic data, dataset conversion, "
        "model conversion and the device runtime.",
    )
    parser.add_argument("--version", action="version", version="roadedge " + __version__)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _terminate(signum, frame):
    raise Terminated()


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate) if _in_main_thread() else None
    try:
        return args.handler(args) or 0
    except ValidationFailed as err:
        for problem in err.problems:
            print("roadedge: error: " + problem, file=sys.stderr)
        print("roadedge: " + str(err) + "; nothing was written", file=sys.stderr)
        return err.exit_code
    except RoadedgeError as err:
        print("roadedge: error: " + str(err), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("roadedge: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("roadedge: terminated", file=sys.stderr)
        return 143
    except OSError as err:  # an I/O error no command turned into its own message: still one line, naming the file
        if args.debug or not err.filename:
            return _unexpected(err, args.debug)
        print("roadedge: error: {}: {}".format(err.filename, os_reason(err)), file=sys.stderr)
        return 2
    except Exception as err:  # a bug: a short report, the traceback with --debug
        return _unexpected(err, args.debug)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _unexpected(err, debug):
    if debug:
        raise err
    text = " ".join(str(err).split())
    print("roadedge: internal error: {}{} (a bug in roadedge: run it again as `roadedge --debug ...` for the traceback, and "
          "report it)".format(type(err).__name__, ": " + text[:300] if text else ""), file=sys.stderr)
    return 1


def _in_main_thread():
    import threading

    return threading.current_thread() is threading.main_thread()
