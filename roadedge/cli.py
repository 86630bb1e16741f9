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
from roadedge.core.errors import RoadedgeError, Terminated, ValidationFailed

COMMAND_MODULES = (
    "edge.run_command",
    "edge.synth.command",
    "converters.dataset_command",
    "converters.convert_command",
    "training.command",
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="roadedge",
        description="Road-damage detection on the edge: synthetic data, dataset conversion, "
        "model conversion and the device runtime.",
    )
    parser.add_argument("--version", action="version", version="roadedge " + __version__)
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
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _in_main_thread():
    import threading

    return threading.current_thread() is threading.main_thread()
