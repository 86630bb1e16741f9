"""Reproducible train/validation split, stratified by class (iterative stratification).

Images with several classes make simple per-stratum splitting lopsided, so
this follows Sechidis et al. (2011): each split has a demand per class (its
share of that class's objects) and for images overall; the class with the
fewest unassigned images is served first, each of its images going to the
split that still wants most of that class (ties: most images wanted, then
train). Images are taken in sha256(seed:stem) order, so the result depends
only on the seed and the set of images, never on file-system order or a
library's random generator. Images without objects fill the remaining image
demand in the same order.
"""
import hashlib
from collections import Counter

SPLITS = ("train", "validation")


def _rank(seed, stem):
    return hashlib.sha256("{}:{}".format(seed, stem).encode("utf-8")).hexdigest()


def split_items(items, validation_fraction, seed):
    """`items`: list of (stem, [class code per object]). Returns (train_stems, validation_stems), each sorted."""
    shares = {"train": 1.0 - validation_fraction, "validation": validation_fraction}
    objects = {stem: Counter(codes) for stem, codes in items}
    order = sorted(objects, key=lambda stem: _rank(seed, stem))
    totals = Counter()
    for counts in objects.values():
        totals.update(counts)
    wanted_images = {split: len(items) * share for split, share in shares.items()}
    wanted = {split: {code: total * share for code, total in totals.items()} for split, share in shares.items()}
    assigned = {}

    def assign(stem, split):
        assigned[stem] = split
        wanted_images[split] -= 1
        for code, count in objects[stem].items():
            wanted[split][code] -= count

    while True:
        left = Counter(code for stem in order if stem not in assigned for code in objects[stem])
        if not left:
            break
        code = min(left, key=lambda c: (left[c], c))
        for stem in order:
            if stem not in assigned and code in objects[stem]:
                assign(stem, max(SPLITS, key=lambda s: (wanted[s][code], wanted_images[s], s == "train")))
    for stem in order:
        if stem not in assigned:
            assign(stem, max(SPLITS, key=lambda s: (wanted_images[s], s == "train")))
    return (sorted(s for s in assigned if assigned[s] == "train"),
            sorted(s for s in assigned if assigned[s] == "validation"))
