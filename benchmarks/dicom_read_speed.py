"""What placing every DICOM slice from its own position costs, on the CT head atlas written
as a full-resolution series (202 x 202 pixels, 179 slices).

Baseline: SimpleITK's ImageSeriesReader on GDCM's file list (what the project used before,
which stacks slices as if they were regular). Measured in the same process: `read_volume`
on the regular series, on the series with one slice missing (resampled), and on a
gantry-tilted copy (resampled with in-plane interpolation); printed as seconds and as
ratios to the baseline.

    python benchmarks/dicom_read_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def best_of(repeats: int, work) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    import SimpleITK as sitk

    from MedSAMAgentLib.io.volumes import read_volume
    from Testing.fixtures.dicom_series import SeriesWriter, anatomy_series, tilted_axial

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        _, atlas, _ = anatomy_series(folder / "regular", step=1)
        count = atlas.array.shape[0]
        anatomy_series(folder / "missing", step=1, keep=[k for k in range(count) if k != count // 2])
        tilted = SeriesWriter(folder / "tilted", pixel_spacing=atlas.geometry.spacing[1::-1])
        orientation = tilted_axial(12.0)
        for k in range(count):  # the table moves along z while the slices are tilted: a sheared stack
            tilted.add(atlas.array[k], np.asarray(atlas.geometry.origin) + [0.0, 0.0, k * atlas.geometry.spacing[2]], orientation)

        def itk_series():
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder / "regular")))
            sitk.GetArrayFromImage(reader.Execute())

        sitk.ProcessObject_SetGlobalWarningDisplay(False)
        baseline = best_of(args.repeats, itk_series)
        quiet = {"log": lambda _: None}
        rows = [("SimpleITK ImageSeriesReader (baseline)", baseline)]
        for name in ("regular", "missing", "tilted"):
            rows.append((f"read_volume, {name} series", best_of(args.repeats, lambda n=name: read_volume(folder / n, **quiet))))
    print(f"CT head atlas series: {count} slices of {atlas.array.shape[2]} x {atlas.array.shape[1]} pixels, best of {args.repeats}")
    for name, seconds in rows:
        print(f"{name:45s} {seconds:7.3f} s   x{seconds / baseline:5.2f}")


if __name__ == "__main__":
    main()
