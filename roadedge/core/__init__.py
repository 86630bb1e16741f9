"""The shared core every package may import: errors, atomic file helpers, the label catalogue, model metadata,
MXNet artefact reading and OpenVINO preprocessing. It imports nothing of the runtime, converters or training."""
