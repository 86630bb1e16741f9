"""roadedge: edge inference runtime for road-surface damage detection (the runtime package)."""
