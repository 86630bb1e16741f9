"""A defect's severity from its ground footprint: the flat-road size of its best box, in metres.

A box's footprint is `width_m` (across the road) by `length_m` (along it; None when the box's top is above the
horizon). Cracks are judged by their length, areal damage by its area (`footprint_m2` = width_m x length_m):

    class                              measure                  low        medium        high
    D00, D01 longitudinal crack        length_m (along)         < 1 m      1 - 3 m       >= 3 m
    D10, D11 lateral crack             width_m (across)         < 1 m      1 - 2.5 m     >= 2.5 m
    D20 alligator crack                footprint_m2             < 1 m2     1 - 4 m2      >= 4 m2
    D30, D40 pothole, rutting          footprint_m2             < 0.25 m2  0.25 - 1 m2   >= 1 m2
    D43, D44 crosswalk / line blur     footprint_m2             < 1 m2     1 - 5 m2      >= 5 m2
    D50 manhole, unknown codes         -                        no severity (None)

The box is an upper bound of the damage (a diagonal crack fills little of its box), so the thresholds are those of
the box, chosen so a typical small defect of each kind is "low": a 30 cm pothole, a hand-long crack, a patch of
alligator cracking the size of a door mat. A measure that is unknown (length_m None) gives no severity, never a guess.
"""

# class code -> (measure, medium from, high from); measure: "length" (length_m), "width" (width_m) or "area"
THRESHOLDS = {
    "D00": ("length", 1.0, 3.0),
    "D01": ("length", 1.0, 3.0),
    "D10": ("width", 1.0, 2.5),
    "D11": ("width", 1.0, 2.5),
    "D20": ("area", 1.0, 4.0),
    "D30": ("area", 0.25, 1.0),
    "D40": ("area", 0.25, 1.0),
    "D43": ("area", 1.0, 5.0),
    "D44": ("area", 1.0, 5.0),
}
LEVELS = ("low", "medium", "high")


def footprint_m2(width_m, length_m):
    """width_m x length_m, or None when either is unknown."""
    if width_m is None or length_m is None:
        return None
    return float(width_m) * float(length_m)


def severity(label, width_m, length_m):
    """'low', 'medium' or 'high' for a box of class `label` whose ground footprint is width_m x length_m; None for
    a class without a severity scale or a footprint whose measure is unknown."""
    rule = THRESHOLDS.get(label)
    if rule is None:
        return None
    measure, medium, high = rule
    value = {"length": length_m, "width": width_m, "area": footprint_m2(width_m, length_m)}[measure]
    if value is None:
        return None
    return "high" if value >= high else "medium" if value >= medium else "low"
