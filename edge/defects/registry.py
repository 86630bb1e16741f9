"""The defect registry: one row per physical defect (class and place), fed by damage events, kept in SQLite.

    with DefectRegistry("defects.sqlite", radius_m=8.0, pass_gap_s=600.0) as registry:
        defect_id = registry.record(event_message, snapshot=jpeg_bytes)   # None: the event had no ground position
    read_defects("defects.sqlite", since="2026-11-01", label="D40")       # read-only, from any process

Sightings. One tracked damage (device, boot_id, track_id) is one sighting; its new / update / end events refine
it: they carry the track's best score so far and its place on the road so far (of its detections' places, the one
seen from nearest), so a later event of the track (its score is at least as high) replaces the sighting's position,
footprint and score. Events without `ground` (no fix, a stale fix, a box above the horizon or too far) are
ignored: no position, no defect.

Matching. The first event of a sighting that has a ground position joins the nearest defect of the same class
whose position is within `radius_m` (geodesic, edge.gps.geo.distance), across passes, boots and days; else it
makes a new defect. Candidates come from an index on (label, lat) and a lat/lon box around the point before the
geodesic check. A sighting stays with its defect afterwards, even if its position is refined away from it.

A defect's position is the score-weighted mean of its sightings' ground positions (weights = best scores, so a
confident sighting counts more than a doubtful one, and no single sighting decides), kept as running sums, with
longitudes relative to the first sighting's (no jump at the antimeridian). Its severity and footprint are those of
its best-scoring sighting (edge.defects.severity), the one its snapshot shows.

Passes. A new sighting is a new pass of its defect when it comes from another run (device, boot_id) than the
defect's last sighting, or starts more than `pass_gap_s` after the defect was last seen; a track lost and found
again in the same drive past the same pothole is a second sighting in the same pass.

Snapshots. JPEG bytes given with an event are written (atomically) to `<folder>/<stem>-snapshots/<defect id>-
<sighting id>.jpg` when they belong to the defect's best-scoring sighting; the defect's other snapshots are then
removed (they are the registry's own files). A defect keeps one snapshot, its best.

Concurrency. One writer (the runtime's pipeline thread) and any number of readers in other threads or processes
(the console, `roadedge report` during a run): WAL, one short write transaction per event, a busy timeout. A
DefectRegistry's own connection is guarded by a lock, so `defects()` may be called from another thread.

Standard library and edge.* only (Python 3.7: the DeepLens runs it).
"""
import math
import os
import sqlite3
import threading

from edge.defects.severity import footprint_m2, severity
from edge.defects.times import epoch_seconds
from edge.gps.geo import distance
from roadedge.core.catalog import class_name
from roadedge.core.errors import RoadedgeError, os_reason
from roadedge.core.fsutil import atomic_file

SCHEMA_NAME = "roadedge.defects"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 5.0
MIN_WEIGHT = 1e-3  # a score of 0 still places its sighting, barely
DEGREE_LAT_M = 110574.0  # the shortest degree of latitude (equator): the candidate box is never too small
DEGREE_LON_M = 111320.0  # a degree of longitude at the equator (x cos(lat) elsewhere)

TABLES = (
    "CREATE TABLE registry_schema (name TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    "CREATE TABLE defects (id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT NOT NULL, lat REAL NOT NULL, "
    "lon REAL NOT NULL, w_sum REAL NOT NULL, lat_sum REAL NOT NULL, lon_ref REAL NOT NULL, dlon_sum REAL NOT NULL, "
    "first_seen TEXT NOT NULL, first_seen_s REAL NOT NULL, last_seen TEXT NOT NULL, last_seen_s REAL NOT NULL, "
    "sightings INTEGER NOT NULL, passes INTEGER NOT NULL, best_score REAL NOT NULL, severity TEXT, footprint_m2 REAL, "
    "snapshot TEXT, last_device TEXT NOT NULL, last_boot TEXT NOT NULL)",
    "CREATE INDEX defects_place ON defects (label, lat)",
    "CREATE INDEX defects_last_seen ON defects (last_seen_s)",
    "CREATE TABLE sightings (id INTEGER PRIMARY KEY AUTOINCREMENT, defect_id INTEGER NOT NULL REFERENCES defects (id), "
    "device TEXT NOT NULL, boot_id TEXT NOT NULL, track_id INTEGER NOT NULL, lat REAL NOT NULL, lon REAL NOT NULL, "
    "width_m REAL, length_m REAL, score REAL NOT NULL, first_seen TEXT NOT NULL, first_seen_s REAL NOT NULL, "
    "last_seen TEXT NOT NULL, last_seen_s REAL NOT NULL, snapshot TEXT, snapshot_score REAL, "
    "UNIQUE (device, boot_id, track_id))",
    "CREATE INDEX sightings_defect ON sightings (defect_id, score)",
)
COLUMNS = ("id", "label", "lat", "lon", "severity", "footprint_m2", "sightings", "passes", "first_seen", "last_seen",
           "best_score", "snapshot")


def _wrap(lon):
    return (lon + 180.0) % 360.0 - 180.0


def _not_a_registry(path, why):
    return RoadedgeError("{}: not a defect registry ({})".format(path, why))


def _check_schema(db, path):
    """RoadedgeError unless `db` is a registry this roadedge reads; False when it is empty (a new file)."""
    try:
        tables = set(row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        if not tables:
            return False
        if "registry_schema" not in tables:
            raise _not_a_registry(path, "an SQLite file with other tables: {}".format(", ".join(sorted(tables))[:200]))
        row = db.execute("SELECT version FROM registry_schema WHERE name = ?", (SCHEMA_NAME,)).fetchone()
    except sqlite3.DatabaseError as err:
        raise _not_a_registry(path, err) from None
    if row is None:
        raise _not_a_registry(path, "no {} version in its registry_schema table".format(SCHEMA_NAME))
    if row[0] > SCHEMA_VERSION:
        raise RoadedgeError("{}: a defect registry of version {}, written by a newer roadedge; this one reads version "
                            "{}".format(path, row[0], SCHEMA_VERSION))
    return True


def _create(db):
    db.execute("BEGIN IMMEDIATE")
    try:
        if not db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchone():  # nobody made it meanwhile
            for statement in TABLES:
                db.execute(statement)
            db.execute("INSERT INTO registry_schema (name, version) VALUES (?, ?)", (SCHEMA_NAME, SCHEMA_VERSION))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _select(db, since, label, snapshot_base=None):
    """The defects as dicts (see read_defects), last seen at or after `since`, of the class(es) `label`, by id."""
    where, params = [], []
    if since is not None:
        where.append("last_seen_s >= ?")
        params.append(epoch_seconds(since))
    labels = [label] if isinstance(label, str) else list(label or [])
    if labels:
        where.append("label IN ({})".format(", ".join("?" * len(labels))))
        params.extend(labels)
    sql = "SELECT {} FROM defects{} ORDER BY id".format(", ".join(COLUMNS), " WHERE " + " AND ".join(where) if where else "")
    found = []
    for row in db.execute(sql, params):
        item = dict(zip(COLUMNS, row))
        item["name"] = class_name(item["label"])
        if item["footprint_m2"] is not None:
            item["footprint_m2"] = round(item["footprint_m2"], 3)
        found.append(item)
    return found


def read_defects(path, since=None, label=None):
    """The defects of the registry at `path`, opened read-only (safe while a run writes it); `since`: a datetime,
    date or ISO text (defects last seen at or after it); `label`: a class code or a list of them. Each is a dict:
    id, label, name, lat, lon, severity, footprint_m2, sightings, passes, first_seen, last_seen, best_score, snapshot
    (relative to the registry's folder, or None). RoadedgeError naming `path` when it is missing or not a registry."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise RoadedgeError("{}: no such file (expected a defect registry)".format(path))
    if os.path.isdir(path):
        raise RoadedgeError("{}: is a folder (expected a defect registry file)".format(path))
    from urllib.parse import quote

    try:
        db = sqlite3.connect("file:{}?mode=ro".format(quote(os.path.abspath(path))), uri=True, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error as err:
        raise RoadedgeError("{}: cannot open it ({})".format(path, err)) from None
    try:
        if not _check_schema(db, path):
            raise _not_a_registry(path, "an empty file")
        return _select(db, since, label)
    except sqlite3.DatabaseError as err:
        raise RoadedgeError("{}: cannot read it ({})".format(path, err)) from None
    finally:
        db.close()


class DefectRegistry(object):
    def __init__(self, path, radius_m=8.0, pass_gap_s=600.0):
        self.path = os.fspath(path)
        self.radius_m, self.pass_gap_s = float(radius_m), float(pass_gap_s)
        self.folder = os.path.dirname(os.path.abspath(self.path))
        stem = os.path.splitext(os.path.basename(self.path))[0]
        self.snapshots_name = stem + "-snapshots"  # relative to the registry's folder
        self.snapshots_dir = os.path.join(self.folder, self.snapshots_name)
        self._lock = threading.Lock()
        self.snapshot_errors, self.snapshot_error = 0, None  # snapshots that could not be written, the last reason
        if os.path.isdir(self.path):
            raise RoadedgeError("{}: is a folder (expected a defect registry file)".format(self.path))
        if not os.path.isdir(self.folder):
            raise RoadedgeError("{}: folder {} does not exist (create it, or choose another path)".format(
                self.path, self.folder))
        try:
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as err:
            raise RoadedgeError("{}: cannot open it ({})".format(self.path, err)) from None
        try:
            existing = _check_schema(self._db, self.path)  # before anything is written: never touch another file
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            if not existing:
                _create(self._db)
            self.defect_count = self._db.execute("SELECT COUNT(*) FROM defects").fetchone()[0]
            self.sighting_count = self._db.execute("SELECT COUNT(*) FROM sightings").fetchone()[0]
        except sqlite3.Error as err:
            self._db.close()
            raise RoadedgeError("{}: cannot open it as a defect registry ({})".format(self.path, err)) from None
        except BaseException:
            self._db.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def defects(self, since=None, label=None):
        """As read_defects(), through this registry's connection."""
        with self._lock:
            if self._db is None:
                raise RoadedgeError("{}: the defect registry is closed".format(self.path))
            return _select(self._db, since, label)

    # --- recording ---

    def record(self, event, snapshot=None):
        """One roadedge.events/1 message (dict) -> the id of its defect, or None when it has no ground position.
        `snapshot`: JPEG bytes of the track's best frame, or None."""
        ground = event.get("ground")
        if not ground or ground.get("lat") is None or ground.get("lon") is None:
            return None
        sighting = {
            "device": str(event.get("device") or ""), "boot_id": str(event["boot_id"]), "track_id": int(event["track_id"]),
            "label": event["label"], "score": float(event["score"]),
            "lat": float(ground["lat"]), "lon": _wrap(float(ground["lon"])),
            "width_m": _number(ground.get("width_m")), "length_m": _number(ground.get("length_m")),
            "first_seen": event["first_seen"], "first_seen_s": epoch_seconds(event["first_seen"]),
            "last_seen": event["last_seen"], "last_seen_s": epoch_seconds(event["last_seen"]),
        }
        with self._lock:
            if self._db is None:
                raise RoadedgeError("{}: the defect registry is closed".format(self.path))
            removed, added = [], [0, 0]  # snapshot files to remove after the commit; new defects, new sightings
            try:
                self._db.execute("BEGIN IMMEDIATE")
                defect_id = self._record(sighting, snapshot, removed, added)
                self._db.execute("COMMIT")
            except BaseException as err:
                try:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite rolled back already, or cannot: the error that matters is the one raised
                if isinstance(err, sqlite3.Error):
                    raise RoadedgeError("{}: cannot record the event ({})".format(self.path, err)) from None
                raise
            self.defect_count += added[0]
            self.sighting_count += added[1]
        for path in removed:  # only once the rows no longer point at them
            try:
                os.unlink(path)
            except OSError:
                pass
        return defect_id

    def _record(self, s, snapshot, removed, added):
        db = self._db
        row = db.execute("SELECT id, defect_id, lat, lon, score, first_seen_s, last_seen_s, snapshot, snapshot_score "
                         "FROM sightings WHERE device = ? AND boot_id = ? AND track_id = ?",
                         (s["device"], s["boot_id"], s["track_id"])).fetchone()
        if row is None:
            defect_id = self._match(s["label"], s["lat"], s["lon"])
            new_pass = defect_id is None or self._is_new_pass(defect_id, s)
            if defect_id is None:
                defect_id = db.execute(
                    "INSERT INTO defects (label, lat, lon, w_sum, lat_sum, lon_ref, dlon_sum, first_seen, first_seen_s, "
                    "last_seen, last_seen_s, sightings, passes, best_score, last_device, last_boot) "
                    "VALUES (?, ?, ?, 0, 0, ?, 0, ?, ?, ?, ?, 0, 0, ?, ?, ?)",
                    (s["label"], s["lat"], s["lon"], s["lon"], s["first_seen"], s["first_seen_s"], s["last_seen"],
                     s["last_seen_s"], s["score"], s["device"], s["boot_id"])).lastrowid
                added[0] += 1
            sighting_id = db.execute(
                "INSERT INTO sightings (defect_id, device, boot_id, track_id, lat, lon, width_m, length_m, score, "
                "first_seen, first_seen_s, last_seen, last_seen_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (defect_id, s["device"], s["boot_id"], s["track_id"], s["lat"], s["lon"], s["width_m"], s["length_m"],
                 s["score"], s["first_seen"], s["first_seen_s"], s["last_seen"], s["last_seen_s"])).lastrowid
            added[1] += 1
            db.execute("UPDATE defects SET sightings = sightings + 1, passes = passes + ? WHERE id = ?",
                       (1 if new_pass else 0, defect_id))
            self._move_weight(defect_id, None, s)
            held = (None, None)
        else:
            sighting_id, defect_id, old_lat, old_lon, old_score = row[:5]
            if s["score"] >= old_score:  # the track's best so far: its position and footprint replace the old ones
                db.execute("UPDATE sightings SET lat = ?, lon = ?, width_m = ?, length_m = ?, score = ? WHERE id = ?",
                           (s["lat"], s["lon"], s["width_m"], s["length_m"], s["score"], sighting_id))
                self._move_weight(defect_id, (old_lat, old_lon, old_score), s)
            defect_id = self._rejoin(defect_id, sighting_id, s, removed, added)
            db.execute("UPDATE sightings SET first_seen = ?, first_seen_s = ? WHERE id = ? AND first_seen_s > ?",
                       (s["first_seen"], s["first_seen_s"], sighting_id, s["first_seen_s"]))
            db.execute("UPDATE sightings SET last_seen = ?, last_seen_s = ? WHERE id = ? AND last_seen_s < ?",
                       (s["last_seen"], s["last_seen_s"], sighting_id, s["last_seen_s"]))
            held = row[7:9]
        db.execute("UPDATE defects SET first_seen = ?, first_seen_s = ? WHERE id = ? AND first_seen_s > ?",
                   (s["first_seen"], s["first_seen_s"], defect_id, s["first_seen_s"]))
        db.execute("UPDATE defects SET last_seen = ?, last_seen_s = ?, last_device = ?, last_boot = ? "
                   "WHERE id = ? AND last_seen_s <= ?",
                   (s["last_seen"], s["last_seen_s"], s["device"], s["boot_id"], defect_id, s["last_seen_s"]))
        if snapshot is not None and (held[0] is None or s["score"] > held[1]):
            self._keep_snapshot(defect_id, sighting_id, s["score"], snapshot, removed)
        self._refresh_best(defect_id)
        return defect_id

    def _rejoin(self, defect_id, sighting_id, s, removed, added):
        """A defect made by this sighting alone whose refined place now lies within radius_m of another defect of its
        class joins that one: a track first placed from afar (where a pixel spans metres) and refined as the car came
        near must not leave a twin behind. Returns the sighting's defect id."""
        if self._db.execute("SELECT sightings FROM defects WHERE id = ?", (defect_id,)).fetchone()[0] != 1:
            return defect_id
        other = self._match(s["label"], s["lat"], s["lon"], exclude=defect_id)
        if other is None:
            return defect_id
        new_pass = self._is_new_pass(other, s)
        self._db.execute("DELETE FROM defects WHERE id = ?", (defect_id,))
        self._db.execute("UPDATE sightings SET defect_id = ? WHERE id = ?", (other, sighting_id))
        self._db.execute("UPDATE defects SET sightings = sightings + 1, passes = passes + ? WHERE id = ?",
                         (1 if new_pass else 0, other))
        self._move_weight(other, None, s)
        added[0] -= 1
        shots = self._db.execute("SELECT id, snapshot FROM sightings WHERE defect_id = ? AND snapshot IS NOT NULL "
                                 "ORDER BY snapshot_score DESC, id DESC", (other,)).fetchall()
        for loser_id, loser in shots[1:]:  # one snapshot per defect: its best
            self._db.execute("UPDATE sightings SET snapshot = NULL, snapshot_score = NULL WHERE id = ?", (loser_id,))
            removed.append(os.path.join(self.folder, *loser.split("/")))
        return other

    def _match(self, label, lat, lon, exclude=None):
        """The id of the nearest defect of class `label` within radius_m of (lat, lon) (other than `exclude`), or
        None."""
        dlat = self.radius_m / DEGREE_LAT_M * 1.01
        cos_lat = math.cos(math.radians(min(90.0, abs(lat) + dlat)))
        dlon = 360.0 if cos_lat < 1e-9 else self.radius_m / (DEGREE_LON_M * cos_lat) * 1.01
        sql = "SELECT id, lat, lon FROM defects WHERE label = ? AND lat BETWEEN ? AND ?"
        params = [label, lat - dlat, lat + dlat]
        if dlon < 180.0:
            low, high = lon - dlon, lon + dlon
            if low < -180.0 or high > 180.0:  # the box crosses the antimeridian: two ranges
                sql += " AND (lon >= ? OR lon <= ?)"
                params += [_wrap(low), _wrap(high)]
            else:
                sql += " AND lon BETWEEN ? AND ?"
                params += [low, high]
        best, best_m = None, None
        for defect_id, d_lat, d_lon in self._db.execute(sql, params):
            if defect_id == exclude:
                continue
            metres = distance(lat, lon, d_lat, d_lon)
            if metres <= self.radius_m and (best_m is None or metres < best_m):
                best, best_m = defect_id, metres
        return best

    def _is_new_pass(self, defect_id, s):
        last_device, last_boot, last_seen_s = self._db.execute(
            "SELECT last_device, last_boot, last_seen_s FROM defects WHERE id = ?", (defect_id,)).fetchone()
        return (last_device, last_boot) != (s["device"], s["boot_id"]) or s["first_seen_s"] - last_seen_s > self.pass_gap_s

    def _move_weight(self, defect_id, old, s):
        """Replace a sighting's (lat, lon, score) `old` (None: a new sighting) by s's in the defect's weighted mean."""
        w_sum, lat_sum, lon_ref, dlon_sum = self._db.execute(
            "SELECT w_sum, lat_sum, lon_ref, dlon_sum FROM defects WHERE id = ?", (defect_id,)).fetchone()
        if old is not None:
            weight = max(old[2], MIN_WEIGHT)
            w_sum, lat_sum, dlon_sum = w_sum - weight, lat_sum - weight * old[0], dlon_sum - weight * _wrap(old[1] - lon_ref)
        weight = max(s["score"], MIN_WEIGHT)
        w_sum, lat_sum, dlon_sum = w_sum + weight, lat_sum + weight * s["lat"], dlon_sum + weight * _wrap(s["lon"] - lon_ref)
        self._db.execute("UPDATE defects SET w_sum = ?, lat_sum = ?, dlon_sum = ?, lat = ?, lon = ? WHERE id = ?",
                         (w_sum, lat_sum, dlon_sum, lat_sum / w_sum, _wrap(lon_ref + dlon_sum / w_sum), defect_id))

    def _keep_snapshot(self, defect_id, sighting_id, score, jpeg, removed):
        """Write the sighting's snapshot if it is (now) the defect's best; the defect's other snapshots go."""
        others = self._db.execute("SELECT MAX(score) FROM sightings WHERE defect_id = ? AND id != ?",
                                  (defect_id, sighting_id)).fetchone()[0]
        if others is not None and score < others:
            return
        name = "{}-{}.jpg".format(defect_id, sighting_id)
        try:
            os.makedirs(self.snapshots_dir, exist_ok=True)
            with atomic_file(os.path.join(self.snapshots_dir, name)) as handle:
                handle.write(bytes(jpeg))
        except OSError as err:  # disk full, read-only: the sighting counts all the same, without its image
            self.snapshot_errors += 1
            self.snapshot_error = "{}: cannot write ({})".format(os.path.join(self.snapshots_dir, name), os_reason(err))
            return
        relative = self.snapshots_name + "/" + name
        self._db.execute("UPDATE sightings SET snapshot = ?, snapshot_score = ? WHERE id = ?",
                         (relative, score, sighting_id))
        for other_id, other in self._db.execute("SELECT id, snapshot FROM sightings WHERE defect_id = ? AND id != ? "
                                                "AND snapshot IS NOT NULL", (defect_id, sighting_id)).fetchall():
            self._db.execute("UPDATE sightings SET snapshot = NULL, snapshot_score = NULL WHERE id = ?", (other_id,))
            if other != relative:
                removed.append(os.path.join(self.folder, *other.split("/")))

    def _refresh_best(self, defect_id):
        """The defect's best score, severity and footprint (of its best-scoring sighting) and snapshot."""
        score, width_m, length_m = self._db.execute(
            "SELECT score, width_m, length_m FROM sightings WHERE defect_id = ? ORDER BY score DESC, id DESC LIMIT 1",
            (defect_id,)).fetchone()
        label = self._db.execute("SELECT label FROM defects WHERE id = ?", (defect_id,)).fetchone()[0]
        shot = self._db.execute("SELECT snapshot FROM sightings WHERE defect_id = ? AND snapshot IS NOT NULL "
                                "ORDER BY score DESC, id DESC LIMIT 1", (defect_id,)).fetchone()
        self._db.execute("UPDATE defects SET best_score = ?, severity = ?, footprint_m2 = ?, snapshot = ? WHERE id = ?",
                         (score, severity(label, width_m, length_m), footprint_m2(width_m, length_m),
                          shot[0] if shot else None, defect_id))


def _number(value):
    return None if value is None else float(value)
