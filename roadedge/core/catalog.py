"""The road-damage label catalogue: class codes, human names, colours, named class maps.

It is data (`roadedge/core/data/road_damage_classes.json`), not code: a class map is an
ordered list of codes whose positions are the 0-based class ids.
"""
import json
import os

_CATALOG_PATH = os.path.join(os.path.dirname(__file__), "data", "road_damage_classes.json")
_cache = {}


def load_catalog():
    if "catalog" not in _cache:
        with open(_CATALOG_PATH, encoding="utf-8") as handle:
            _cache["catalog"] = json.load(handle)
    return _cache["catalog"]


def class_name(code):
    """Human name of a class code; the code itself when the catalogue does not know it."""
    entry = load_catalog()["classes"].get(code)
    return entry["name"] if entry else code


def class_color(code):
    """BGR drawing colour of a class code (grey for codes the catalogue does not know)."""
    entry = load_catalog()["classes"].get(code)
    return tuple(entry["color"]) if entry else (200, 200, 200)


def named_class_maps():
    return dict(load_catalog()["class_maps"])


def default_class_map():
    catalog = load_catalog()
    return list(catalog["class_maps"][catalog["default_class_map"]])


SYNTH_CLASSES = tuple(load_catalog()["class_maps"]["synth"])
