"""Pure numpy parts of the runtime: decoding, geometry, drawing math. No camera, network or cloud imports here."""
