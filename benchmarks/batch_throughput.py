"""Throughput of `medsam-agent batch` on this machine: rows per minute with one local
worker, two local workers and Ray with two actors (a local Ray cluster started here), and
Ray's overhead per row against the local loop of the same shape (one worker with all the
cores against one actor with all the cores): in all, and outside the rows themselves (the
wall time the workers spend on no row: their start, handing rows over, results back), with
each worker's peak memory. All settings
run in one run of this script, on the same rows, so the ratios compare like with like.

The rows are box rows on the generated abdominal phantom (LiteMedSAM, the default
segmenter), each over a few slices: a cohort's plumbing, not a segmentation benchmark. The
time of a setting runs from its first row handed out to its last row done, so it includes
each worker's start and model load, as a cohort pays them.

    python benchmarks/batch_throughput.py [--rows 12] [--slices 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from MedSAMAgentLib import cli  # noqa: E402
from MedSAMAgentLib.cli.batch import shared_options  # noqa: E402
from MedSAMAgentLib.cli.cohort.cohort import run_batch  # noqa: E402
from MedSAMAgentLib.segmenters.runtimes.hardware import cpu_name, usable_cores  # noqa: E402

KIDNEY_BOXES = [(17, "39 95 72 124"), (20, "122 97 153 126")]  # the phantom's right and left kidneys


class Timing:
    """The batch's events, timed: from the first row handed out to the last row done."""

    def checked(self, result) -> None:
        if result.status == "failed":
            raise SystemExit(f"row {result.row} refused: {result.error}")

    def running(self, rows: int, where: str) -> None:
        self.where, self.started = where, time.perf_counter()

    def finished(self, result) -> None:
        if result.status != "done":
            raise SystemExit(f"row {result.row} failed: {result.error}")
        self.ended = time.perf_counter()

    def lost(self, job, why: str) -> None:
        raise SystemExit(f"a worker was lost: {why}")


def write_manifest(folder: Path, rows: int, slices: int) -> Path:
    from MedSAMAgentLib.io.writers import write_volume
    from MedSAMAgentLib.phantom import abdominal_phantom

    write_volume(abdominal_phantom()[0], folder / "phantom.nrrd")
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "slice", "box", "range", "output"])
        for number in range(rows):
            key, box = KIDNEY_BOXES[number % len(KIDNEY_BOXES)]
            writer.writerow(["phantom.nrrd", key, box, f"{key - slices // 2} {key + slices // 2}", f"row{number:03d}.seg.nrrd"])
    return manifest


def run_setting(manifest: Path, output: Path, options: list[str]) -> dict:
    args = cli.build_parser().parse_args(["batch", str(manifest), "-o", str(output), *options])
    timing = Timing()
    results = run_batch(args, shared_options(), timing)
    seconds = timing.ended - timing.started
    with open(results.path, newline="") as handle:
        lines = list(csv.DictReader(handle))
    peaks: dict[str, float] = {}
    for line in lines:
        peaks[line["worker"]] = max(peaks.get(line["worker"], 0.0), float(line["worker_peak_mb"] or 0))
    in_rows = sum(float(line["seconds"]) for line in lines)
    return {"where": timing.where, "rows": len(lines), "seconds": seconds, "rows_per_minute": len(lines) / seconds * 60,
            "row_seconds": in_rows / len(lines), "outside_rows_per_row": (seconds * len(peaks) - in_rows) / len(lines),
            "peak_mb_per_worker": sorted(peaks.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--slices", type=int, default=5, help="slices each row propagates over")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    import ray

    cores = usable_cores()
    print(f"CPU: {cpu_name()}, {cores} cores usable; {options.rows} rows of {options.slices} slices on the phantom")
    settings = {
        "local, 1 worker": ["--workers", "1"],
        "local, 2 workers": ["--workers", "2"],
        "Ray, 1 actor": ["--ray", "auto", "--workers", "1", "--cores-per-worker", str(cores)],
        "Ray, 2 actors": ["--ray", "auto", "--workers", "2", "--cores-per-worker", str(max(cores // 2, 1))],
    }
    figures = {}
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        manifest = write_manifest(folder, options.rows, options.slices)
        os.environ.setdefault("MEDSAM_AGENT_CACHE", str(folder / "converted"))  # converted once, by the warm-up below
        run_setting(manifest, folder / "warm-up", ["--workers", "1"])
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
        try:
            for name, setting in settings.items():
                figures[name] = run_setting(manifest, folder / name.replace(",", "").replace(" ", "_"), setting)
                found = figures[name]
                print(f"{name:18s} {found['rows_per_minute']:6.1f} rows/min  {found['seconds']:6.1f} s  "
                      f"{found['row_seconds']:5.2f} s per row in its worker (models loaded in the first), "
                      f"{found['outside_rows_per_row']:5.2f} s per row outside  peak MB per worker {found['peak_mb_per_worker']}")
        finally:
            ray.shutdown()
    local, on_ray = figures["local, 1 worker"], figures["Ray, 1 actor"]
    overhead = (on_ray["seconds"] - local["seconds"]) / options.rows
    handing = on_ray["outside_rows_per_row"] - local["outside_rows_per_row"]
    print(f"2 local workers against 1: x{figures['local, 2 workers']['rows_per_minute'] / local['rows_per_minute']:.2f}; "
          f"Ray 2 actors against 2 local workers: x{figures['Ray, 2 actors']['rows_per_minute'] / figures['local, 2 workers']['rows_per_minute']:.2f}")
    print(f"Ray's overhead per row against the local loop (1 actor against 1 worker, all cores): {overhead:+.2f} s "
          f"({overhead / (local['seconds'] / options.rows) * 100:+.1f}% of a row); of which outside the rows (starting the "
          f"actor, handing rows over, results back): {handing:+.2f} s ({handing / (local['seconds'] / options.rows) * 100:+.1f}%)")
    if options.json:
        options.json.write_text(json.dumps({"cpu": cpu_name(), "cores": cores, "settings": figures, "ray_overhead_s_per_row": overhead,
                                            "ray_outside_rows_s_per_row": handing}, indent=2))


if __name__ == "__main__":
    main()
