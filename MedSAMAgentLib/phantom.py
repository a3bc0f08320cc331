"""A synthetic abdominal CT with known anatomy, generated on the fly for the demo and tests.

Ellipsoidal organs with Hounsfield-like values (body wall, fat, liver, spleen,
contrast-enhanced kidneys with a darker pelvis, aorta, vena cava, spine, bowel gas),
anisotropic voxels, image noise and slightly blurred edges. The generator also returns
every organ's exact mask, so results can be scored against the truth.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .io.volumes import Geometry, Volume

DEMO_TARGET = "right kidney"


def abdominal_phantom(
    size: tuple[int, int, int] = (192, 160, 48),
    spacing: tuple[float, float, float] = (1.0, 1.0, 4.0),
    seed: int = 7,
) -> tuple[Volume, dict[str, np.ndarray]]:
    """Return (volume in LPS with identity direction, {structure name: (k, j, i) mask})."""
    ni, nj, nk = size
    origin = tuple(-(n - 1) * s / 2.0 for n, s in zip(size, spacing))
    z, y, x = np.meshgrid(
        origin[2] + spacing[2] * np.arange(nk),
        origin[1] + spacing[1] * np.arange(nj),
        origin[0] + spacing[0] * np.arange(ni),
        indexing="ij",
    )

    def ellipsoid(centre, radii):
        return sum(((c - m) / r) ** 2 for c, m, r in zip((x, y, z), centre, radii)) <= 1.0

    def cylinder(centre_xy, radius):
        return (x - centre_xy[0]) ** 2 + (y - centre_xy[1]) ** 2 <= radius**2

    body = ellipsoid((0, 0, 0), (88, 70, 1e6))
    inner = ellipsoid((0, 0, 0), (78, 60, 1e6))
    organs = {
        "liver": ellipsoid((-38, -8, 30), (42, 38, 60)) & inner,
        "spleen": ellipsoid((48, 22, 40), (18, 24, 36)) & inner,
        "right kidney": ellipsoid((-40, 30, -24), (17, 15, 46)),
        "left kidney": ellipsoid((42, 32, -14), (16, 15, 44)),
        "aorta": cylinder((8, 18), 8) & (z > -95),
        "vena cava": cylinder((-18, 18), 9) & (z > -95),
        "vertebra": cylinder((0, 42), 13),
    }
    volume = np.full(x.shape, -1000.0)
    volume[body] = -100.0  # subcutaneous fat
    volume[inner] = 35.0  # muscle and soft tissue
    volume[organs["liver"]] = 62.0
    volume[organs["spleen"]] = 52.0
    for side in ("right kidney", "left kidney"):
        kidney = organs[side]
        centre = tuple(float(np.mean(a[kidney])) for a in (x, y, z))
        pelvis = ellipsoid(centre, (6, 5, 18)) & kidney
        volume[kidney] = 165.0  # enhancing cortex
        volume[pelvis] = 25.0  # renal pelvis
    volume[organs["aorta"]] = 190.0
    volume[organs["vena cava"]] = 130.0
    volume[organs["vertebra"]] = 320.0
    volume[cylinder((0, 42), 13) & ~cylinder((0, 42), 10)] = 700.0  # cortical bone
    rng = np.random.default_rng(seed)
    for _ in range(6):
        centre = (rng.uniform(-40, 40), rng.uniform(-50, -20), rng.uniform(-80, 80))
        volume[ellipsoid(centre, (7, 5, 8)) & inner] = -850.0  # bowel gas
    volume = ndimage.gaussian_filter(volume, sigma=(0.3, 0.7, 0.7))
    volume += rng.normal(0.0, 10.0, volume.shape)
    geometry = Geometry(
        size=size,
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(o) for o in origin),
        direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
    )
    sample = Volume(
        array=np.round(volume).astype(np.int16),
        geometry=geometry,
        modality="CT",
        description="synthetic abdominal CT phantom",
    )
    return sample, organs
