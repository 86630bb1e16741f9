"""Frame sources: one file per capture kind. See edge/sources/base.py for the interface."""
