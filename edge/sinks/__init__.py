"""Outputs of the pipeline: one file per sink. See edge/sinks/base.py for the interface."""
