"""Reproducible train/validation split, stratified by class.

Each image falls in one stratum: its rarest class (fewest images in the whole
set), or the 'empty' stratum when it has no objects. Inside a stratum images
are ordered by sha256(seed:stem), so an image's side depends only on the
seed, its name and its stratum, not on file-system order or library versions.
Validation quotas are shared between strata by largest remainder, so the
total is round(N * fraction).
"""
import hashlib
import math
from collections import Counter

EMPTY_STRATUM = "(no objects)"


def stratum_keys(items):
    """`items`: list of (stem, [class codes]). Returns {stem: stratum}."""
    images_per_class = Counter()
    for _, codes in items:
        images_per_class.update(set(codes))
    keys = {}
    for stem, codes in items:
        if codes:
            keys[stem] = min(set(codes), key=lambda code: (images_per_class[code], code))
        else:
            keys[stem] = EMPTY_STRATUM
    return keys


def split_items(items, validation_fraction, seed):
    """Returns (train_stems, validation_stems), each sorted."""
    keys = stratum_keys(items)
    strata = {}
    for stem, _ in items:
        strata.setdefault(keys[stem], []).append(stem)
    total = len(items)
    wanted = int(round(total * validation_fraction))
    if validation_fraction > 0 and total >= 2:
        wanted = min(max(wanted, 1), total - 1)
    quotas = _largest_remainder({key: len(stems) * validation_fraction for key, stems in strata.items()}, wanted)
    train, validation = [], []
    for key in sorted(strata):
        ordered = sorted(strata[key], key=lambda stem: _rank(seed, stem))
        validation.extend(ordered[: quotas[key]])
        train.extend(ordered[quotas[key]:])
    return sorted(train), sorted(validation)


def _rank(seed, stem):
    return hashlib.sha256("{}:{}".format(seed, stem).encode("utf-8")).hexdigest()


def _largest_remainder(ideal, total):
    quotas = {key: int(math.floor(value)) for key, value in ideal.items()}
    left = total - sum(quotas.values())
    by_remainder = sorted(ideal, key=lambda key: (-(ideal[key] - quotas[key]), key))
    for key in by_remainder[: max(left, 0)]:
        quotas[key] += 1
    return quotas
