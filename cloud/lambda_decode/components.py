"""Connected components of a class-index image in numpy alone (no scipy, no OpenCV: the Lambda zip stays small).

Pixels join when they are neighbours, have the same value and are both `valid`. 8-connectivity by default (a thin
diagonal pole stays one object), 4 on request. The work is done on runs (maximal horizontal stretches of one value):
the links between runs of adjacent rows are found with array operations, then merged by repeated hooking of the
larger root under the smaller one and pointer jumping (union-find without a Python loop per pixel or per run).
"""
import numpy as np


class Components(object):
    """The components, numbered 0..count-1 in raster order of their first pixel.

    value, pixels, x0, x1, y0, y1 (box: x1, y1 exclusive), cx, cy (centroid, pixel indices): one array entry per
    component. `label_image()`: the (H, W) component number of every pixel, -1 where not valid.
    """

    def __init__(self, shape, run_of, run_component, run_row, run_start, run_stop, run_value):
        self.shape = shape
        self._run_of, self._run_component = run_of, run_component
        count = int(run_component.max()) + 1 if run_component.size else 0
        self.count = count
        length = (run_stop - run_start).astype(np.float64)
        self.pixels = np.bincount(run_component, weights=length, minlength=count).astype(np.int64)
        self.value = np.zeros(count, run_value.dtype)
        self.value[run_component] = run_value
        self.x0 = _reduce(np.minimum, run_component, run_start, count, shape[1])
        self.x1 = _reduce(np.maximum, run_component, run_stop, count, 0)
        self.y0 = _reduce(np.minimum, run_component, run_row, count, shape[0])
        self.y1 = _reduce(np.maximum, run_component, run_row, count, -1) + 1
        pixels = np.maximum(self.pixels, 1).astype(np.float64)
        self.cx = np.bincount(run_component, weights=length * (run_start + run_stop - 1) / 2.0, minlength=count) / pixels
        self.cy = np.bincount(run_component, weights=length * run_row, minlength=count) / pixels

    def label_image(self):
        run_of = self._run_of
        labels = np.full(run_of.shape, -1, np.int64)
        inside = run_of >= 0
        labels[inside] = self._run_component[run_of[inside]]
        return labels


def _reduce(ufunc, index, values, count, initial):
    out = np.full(count, initial, np.int64)
    ufunc.at(out, index, values)
    return out


def label_components(values, valid, connectivity=8):
    """Components of `valid` pixels of equal value in the 2-D array `values`; connectivity 4 or 8."""
    if connectivity not in (4, 8):
        raise ValueError("connectivity {!r}; expected 4 or 8".format(connectivity))
    values, valid = np.asarray(values), np.asarray(valid, bool)
    if values.ndim != 2 or values.shape != valid.shape:
        raise ValueError("values {} and valid {}: expected two 2-D arrays of one shape".format(values.shape, valid.shape))
    height, width = values.shape
    same_left = np.zeros(values.shape, bool)  # the pixel continues the run of its left neighbour
    same_left[:, 1:] = valid[:, 1:] & valid[:, :-1] & (values[:, 1:] == values[:, :-1])
    starts = valid & ~same_left
    ends = valid.copy()
    ends[:, :-1] &= ~same_left[:, 1:]
    run_of = (np.cumsum(starts.ravel()) - 1).reshape(values.shape)
    run_of[~valid] = -1
    run_row, run_start = np.nonzero(starts)
    run_stop = np.nonzero(ends)[1] + 1
    run_value = values[run_row, run_start]
    pairs = [_links(run_of[:-1, :], run_of[1:, :], values[:-1, :] == values[1:, :])]
    if connectivity == 8:
        pairs.append(_links(run_of[:-1, :-1], run_of[1:, 1:], values[:-1, :-1] == values[1:, 1:]))
        pairs.append(_links(run_of[:-1, 1:], run_of[1:, :-1], values[:-1, 1:] == values[1:, :-1]))
    upper = np.concatenate([p[0] for p in pairs])
    lower = np.concatenate([p[1] for p in pairs])
    roots = _merge(run_row.size, upper, lower)
    _, run_component = np.unique(roots, return_inverse=True)  # roots are the smallest run of each: raster order
    return Components((height, width), run_of, run_component.reshape(-1), run_row, run_start, run_stop, run_value)


def _links(above, below, equal):
    """(run above, run below) for each pair of linked pixels, once per pair of runs (a pair's pixels are contiguous)."""
    linked = equal & (above >= 0) & (below >= 0)
    first = linked.copy()
    first[:, 1:] &= ~(linked[:, :-1] & (above[:, 1:] == above[:, :-1]) & (below[:, 1:] == below[:, :-1]))
    return above[first], below[first]


def _merge(count, a, b):
    """The root (smallest member) of every node 0..count-1 of the graph with edges (a[i], b[i])."""
    parent = np.arange(count)
    while a.size:
        root_a, root_b = parent[a], parent[b]
        apart = root_a != root_b
        if not apart.any():
            break
        a, b, root_a, root_b = a[apart], b[apart], root_a[apart], root_b[apart]
        np.minimum.at(parent, np.maximum(root_a, root_b), np.minimum(root_a, root_b))  # roots only: parent <= self
        while True:  # pointer jumping until every node points at its root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return parent
