"""Where the vehicle is (GPS sources) and where on the ground a detection is (flat-road projection)."""
