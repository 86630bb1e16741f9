"""Inference engines: one file per backend. See edge/backends/base.py for the interface."""
