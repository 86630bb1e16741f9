"""Defects (dicts of edge.defects.registry.read_defects) -> GeoJSON, CSV or GPX text. Pure: no I/O.

GeoJSON follows RFC 7946: a FeatureCollection of Point features in WGS-84 with [longitude, latitude] (section 3.1.1),
the defect id as the feature's `id` (3.2) and its attributes as `properties`. Coordinates keep 7 decimals (~1 cm,
below any GPS' accuracy; RFC 7946 section 11.2 advises against more). CSV has a header row and one row per defect,
times as ISO 8601 text, empty cells for unknowns. GPX 1.1 has one `<wpt>` per defect (time = last seen, name = class
code, id and severity, desc = the rest, type = class code, a link to the snapshot when there is one), in the element
order of the GPX 1.1 schema's wptType, XML-escaped.
"""
import csv
import io
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

PROPERTIES = ("id", "label", "name", "severity", "footprint_m2", "sightings", "passes", "first_seen", "last_seen",
              "best_score", "snapshot")
CSV_COLUMNS = ("id", "label", "name", "severity", "lat", "lon", "footprint_m2", "sightings", "passes", "first_seen",
               "last_seen", "best_score", "snapshot")
GPX_NAMESPACE = "http://www.topografix.com/GPX/1/1"
DECIMALS = 7


def _lon(lon):
    """Longitude in -180 <= lon < 180 (GPX's range; RFC 7946 allows 180 too, the same meridian)."""
    lon = round(float(lon), DECIMALS)
    return -180.0 if lon >= 180.0 else lon


def to_geojson(defects):
    """A GeoJSON FeatureCollection (dict) with one Point feature per defect."""
    features = []
    for defect in defects:
        features.append({
            "type": "Feature",
            "id": defect["id"],
            "geometry": {"type": "Point", "coordinates": [_lon(defect["lon"]), round(float(defect["lat"]), DECIMALS)]},
            "properties": dict((key, defect.get(key)) for key in PROPERTIES),
        })
    return {"type": "FeatureCollection", "features": features}


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def to_csv(defects):
    """CSV text: a header row, then one row per defect (comma separated, CRLF line ends as spreadsheets expect)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for defect in defects:
        row = dict(defect, lat=round(float(defect["lat"]), DECIMALS), lon=_lon(defect["lon"]))
        writer.writerow([_cell(row.get(column)) for column in CSV_COLUMNS])
    return out.getvalue()


def _describe(defect):
    parts = [defect.get("name") or defect["label"]]
    if defect.get("severity"):
        parts.append("severity " + defect["severity"])
    if defect.get("footprint_m2") is not None:
        parts.append("footprint {:.2f} m2".format(defect["footprint_m2"]))
    parts.append("{} sighting{} in {} pass{}".format(defect["sightings"], "" if defect["sightings"] == 1 else "s",
                                                   defect["passes"], "" if defect["passes"] == 1 else "es"))
    parts.append("first seen " + defect["first_seen"])
    parts.append("last seen " + defect["last_seen"])
    parts.append("best score {:.2f}".format(defect["best_score"]))
    return "; ".join(parts)


def to_gpx(defects):
    """GPX 1.1 text: one waypoint per defect."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<gpx version="1.1" creator="roadedge" xmlns="{}">'.format(GPX_NAMESPACE)]
    for defect in defects:
        title = "{} #{}{}".format(defect["label"], defect["id"], " " + defect["severity"] if defect.get("severity") else "")
        lines.append('  <wpt lat="{!r}" lon="{!r}">'.format(round(float(defect["lat"]), DECIMALS), _lon(defect["lon"])))
        lines.append("    <time>{}</time>".format(escape(defect["last_seen"])))
        lines.append("    <name>{}</name>".format(escape(title)))
        lines.append("    <desc>{}</desc>".format(escape(_describe(defect))))
        if defect.get("snapshot"):
            lines.append("    <link href={}><text>snapshot</text><type>image/jpeg</type></link>".format(
                quoteattr(quote(defect["snapshot"]))))
        lines.append("    <type>{}</type>".format(escape(defect["label"])))
        lines.append("  </wpt>")
    lines.append("</gpx>")
    return "\n".join(lines) + "\n"
