"""World-anchored value noise, sampled into the image with one warpPerspective per octave.

Each octave is a lattice of normal random values with a given cell size in
metres, generated in blocks seeded by (seed, octave, block) so that any window
of an endless road is reproducible and the texture moves with the road.
Bicubic warping of the coarse lattice gives smooth noise directly.

Anti-aliasing: an octave fades out in the image rows where one pixel covers
more than a quarter of its cell (frequency clamping), so distant asphalt
neither shimmers in video nor turns into salt-and-pepper in stills.
"""
import cv2
import numpy as np

BLOCK = 64
_MAX_CACHED_BLOCKS = 512


class NoiseField:
    def __init__(self, seed, cells):
        self.seed = int(seed)
        self.cells = tuple(float(c) for c in cells)
        self._blocks = {}

    def _block(self, octave, bi, bj):
        key = (octave, bi, bj)
        block = self._blocks.get(key)
        if block is None:
            if len(self._blocks) >= _MAX_CACHED_BLOCKS:
                self._blocks.clear()
            rng = np.random.default_rng([self.seed, octave, bi + (1 << 30), bj + (1 << 30)])
            block = rng.standard_normal((BLOCK, BLOCK), dtype=np.float32)
            self._blocks[key] = block
        return block

    def lattice(self, octave, i0, i1, j0, j1):
        """Lattice values for rows i0..i1-1 (along Z) and columns j0..j1-1 (along X)."""
        out = np.empty((i1 - i0, j1 - j0), np.float32)
        for bi in range(i0 // BLOCK, (i1 - 1) // BLOCK + 1):
            for bj in range(j0 // BLOCK, (j1 - 1) // BLOCK + 1):
                block = self._block(octave, bi, bj)
                r0, r1 = max(i0, bi * BLOCK), min(i1, (bi + 1) * BLOCK)
                c0, c1 = max(j0, bj * BLOCK), min(j1, (bj + 1) * BLOCK)
                out[r0 - i0:r1 - i0, c0 - j0:c1 - j0] = block[r0 - bi * BLOCK:r1 - bi * BLOCK, c0 - bj * BLOCK:c1 - bj * BLOCK]
        return out


def warp_world(src, world_to_src, cam, x0, y0, w, h, interpolation=cv2.INTER_CUBIC):
    """Sample a world-anchored array into the pixel rectangle (x0, y0, w, h) of the camera's ground view.

    `world_to_src` is the 3x3 matrix taking (X, Z, 1) to the array's (column, row, 1).
    """
    shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    m = world_to_src @ cam.Hinv @ shift
    return cv2.warpPerspective(src, m, (int(w), int(h)), flags=interpolation | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)


def octave_weights(footprint, cell, sharpness=1.0):
    """Per-row weight of an octave: 1 while a pixel covers <= cell/4 (times sharpness), 0 from cell/2."""
    with np.errstate(divide="ignore", invalid="ignore"):
        w = sharpness * cell / (2.0 * footprint) - 1.0
    return np.clip(np.nan_to_num(w, nan=0.0, posinf=0.0), 0.0, 1.0).astype(np.float32)


def ground_noise(field, cam, y_top, amplitudes, footprint, sharpness=1.0):
    """Sum of the field's octaves over image rows y_top..height-1 (float32, zero mean, ~unit-ish)."""
    height, width = cam.height, cam.width
    out = np.zeros((height - y_top, width), np.float32)
    for octave, (cell, amp) in enumerate(zip(field.cells, amplitudes)):
        if amp == 0:
            continue
        weights = octave_weights(footprint, cell, sharpness)
        active = np.nonzero(weights > 0)[0]
        if len(active) == 0:
            continue
        r0 = int(active[0])
        rows = height - y_top - r0
        corners = np.array([[0, y_top + r0], [width - 1, y_top + r0], [0, height - 1], [width - 1, height - 1]], float)
        ground = _unproject(cam, corners)
        j0 = int(np.floor(ground[:, 0].min() / cell)) - 3
        j1 = int(np.ceil(ground[:, 0].max() / cell)) + 4
        i0 = int(np.floor(ground[:, 1].min() / cell)) - 3
        i1 = int(np.ceil(ground[:, 1].max() / cell)) + 4
        lattice = field.lattice(octave, i0, i1, j0, j1)
        to_src = np.array([[1.0 / cell, 0.0, -j0], [0.0, 1.0 / cell, -i0], [0.0, 0.0, 1.0]])
        sample = warp_world(lattice, to_src, cam, 0, y_top + r0, width, rows)
        out[r0:] += sample * (amp * weights[r0:, None])
    return out


def _unproject(cam, pixels):
    p = np.column_stack([pixels, np.ones(len(pixels))]) @ cam.Hinv.T
    return p[:, :2] / p[:, 2:3]


def local_noise(rng, shape_m, cell, octaves=2):
    """A small lattice for one object's own texture (erosion, gravel): (array, world cell size)."""
    rows = int(np.ceil(shape_m[1] / cell)) + 6
    cols = int(np.ceil(shape_m[0] / cell)) + 6
    lattice = rng.standard_normal((rows, cols)).astype(np.float32)
    for k in range(1, octaves):
        coarse = rng.standard_normal((rows // (2 ** k) + 2, cols // (2 ** k) + 2)).astype(np.float32)
        lattice += 1.4 ** k * cv2.resize(coarse, (cols, rows), interpolation=cv2.INTER_CUBIC)
    return lattice / np.float32(np.sqrt(sum(1.4 ** (2 * k) for k in range(octaves))))
