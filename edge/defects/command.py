"""`roadedge report DEFECTS`: the defect registry as GeoJSON, CSV or GPX, on stdout or to a file."""
import argparse

from roadedge.core.commands import lazy_handler

FORMATS = ("geojson", "csv", "gpx")
DESCRIPTION = """\
Export the defect registry that `roadedge run` keeps when GPS is on (a SQLite file, by default
~/.cache/roadedge/defects-<device>.sqlite): one row per physical defect, i.e. per class and place, with its
position (the score-weighted mean of its sightings' ground positions), severity, sightings, passes, first and last
seen, best score and the path of its best snapshot (relative to the registry's folder). The registry is opened
read-only: a run may go on writing it.

formats:
  geojson  RFC 7946 FeatureCollection of Points ([lon, lat], WGS-84), one feature per defect (QGIS, geojson.io)
  csv      one row per defect with a header row (spreadsheets)
  gpx      GPX 1.1 waypoints (navigation apps, OsmAnd)

examples:
  roadedge report ~/.cache/roadedge/defects-van-3.sqlite > defects.geojson
  roadedge report defects.sqlite --format csv --since 2026-11-01 --class D40,D20 --output potholes.csv
  roadedge report defects.sqlite --format gpx --class D40 --output potholes.gpx"""


def register(subparsers):
    p = subparsers.add_parser("report", help="export the defect registry (GeoJSON, CSV, GPX)", description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("defects", metavar="DEFECTS", help="the defect registry (SQLite file written by `roadedge run`)")
    p.add_argument("--format", choices=FORMATS, default="geojson", help="output format (default: geojson)")
    p.add_argument("--since", metavar="DATE", help="only defects last seen at or after DATE: YYYY-MM-DD (UTC midnight) or "
                   "an ISO 8601 time (2026-11-21T08:00:00Z, 2026-11-21T09:00:00+01:00; no zone = UTC)")
    p.add_argument("--class", dest="classes", action="append", metavar="CODE", help="only defects of this class code "
                   "(D00, D10, D20, D40, ...); repeat it or give a comma list for several")
    p.add_argument("--output", metavar="FILE", help="write to FILE (replaced whole, never half-written) instead of stdout")
    p.set_defaults(handler=lazy_handler("edge.defects.command", "report_command"))


def class_codes(values):
    """--class values ('D40', 'd20,D00') -> the codes, checked against the label catalogue; RoadedgeError otherwise."""
    from roadedge.core.catalog import load_catalog
    from roadedge.core.errors import RoadedgeError, printable

    known = load_catalog()["classes"]
    codes = []
    for value in values or []:
        for code in value.split(","):
            code = code.strip().upper()
            if code not in known:
                raise RoadedgeError("--class: {}: unknown class code; expected one of {}".format(
                    printable(code or value), ", ".join(sorted(known))))
            if code not in codes:
                codes.append(code)
    return codes


def report_command(args):
    import os
    import sys

    from edge.defects.registry import read_defects
    from edge.defects.report import to_csv, to_geojson, to_gpx
    from edge.defects.times import epoch_seconds
    from roadedge.core.errors import RoadedgeError, file_error, printable
    from roadedge.core.fsutil import atomic_file

    codes = class_codes(args.classes)
    since = None
    if args.since is not None:
        try:
            since = epoch_seconds(args.since)
        except ValueError:
            raise RoadedgeError("--since: {}: expected a date (YYYY-MM-DD) or an ISO 8601 time "
                                "(YYYY-MM-DDTHH:MM:SSZ)".format(printable(args.since))) from None
    if args.output:
        folder = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(folder):
            raise RoadedgeError("--output: {}: folder {} does not exist".format(args.output, folder))
        if os.path.exists(args.output) and os.path.exists(args.defects) and os.path.samefile(args.output, args.defects):
            raise RoadedgeError("--output: {}: is the registry itself; choose another file".format(args.output))
    defects = read_defects(args.defects, since=since, label=codes or None)
    if args.format == "geojson":
        import json

        text = json.dumps(to_geojson(defects), indent=1, allow_nan=False) + "\n"
    else:
        text = to_csv(defects) if args.format == "csv" else to_gpx(defects)
    if not args.output:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:  # `| head`: the reader has what it wanted; keep Python's exit flush quiet
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
    else:
        try:
            with atomic_file(args.output) as handle:
                handle.write(text.encode("utf-8"))
        except OSError as err:
            raise file_error(args.output, err) from None
        print("{} defect{} written to {}".format(len(defects), "" if len(defects) == 1 else "s", args.output),
              file=sys.stderr)
    return 0
