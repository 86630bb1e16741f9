"""The defect registry: damage events with a ground position become defects, one per place and class (issue 16).

registry.py  DefectRegistry (SQLite): events -> sightings -> defects, matched by class and geodesic distance
severity.py  the severity table: a defect's ground footprint -> low / medium / high
times.py     ISO 8601 text, dates, datetimes -> epoch seconds (Python 3.7 has no fromisoformat for "Z")
report.py    defects -> GeoJSON (RFC 7946), CSV, GPX 1.1 (pure, no I/O)
command.py   `roadedge report DEFECTS`
The sink that feeds a registry from the runtime is edge/sinks/defects.py.
"""
