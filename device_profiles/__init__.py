"""Device profiles: one YAML per device, read by edge.config (shipped as package data)."""
