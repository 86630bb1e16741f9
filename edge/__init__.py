"""roadedge: edge inference runtime for road-surface damage detection."""
__version__ = "0.1.0"
