"""Segmenting through the browser workstation against the command line, same job.

The job: the demo's (the generated abdominal CT, the box the demo draws around the right
kidney on its middle slice, LiteMedSAM, CPU). The command line: `medsam-agent segment`
in a new process, wall time (its imports and model load included). The page: a real
headless Chromium on `medsam-agent web`, the same box drawn with the mouse on the red view,
from the click on Segment to the page showing the run's end (the session's model load on
its first run included, its process start not). Runs alternate; the converted encoders
are cached once before the first. Medians, and the page's time over the command line's.

    python benchmarks/web_segment_time.py [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from MedSAMAgentLib.io.writers import write_volume  # noqa: E402
from MedSAMAgentLib.phantom import DEMO_TARGET, abdominal_phantom  # noqa: E402
from MedSAMAgentLib.segmenters.runtimes.cache import CACHE_ENVIRONMENT_VARIABLE  # noqa: E402
from Testing.fixtures.browser import headless_chromium  # noqa: E402
from Testing.web.conftest import WINDOW, running_workstation  # noqa: E402
from Testing.web.page_driver import (  # noqa: E402
    click_and_wait_run,
    draw_box_on_red,
    open_page,
    show_red_slice,
    upload,
)
from Testing.web.test_segment_in_browser import demo_box_ras  # noqa: E402


def command_line(volume_path: Path, key: int, box, folder: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "MedSAMAgentLib.cli", "segment", str(volume_path), "-o", str(folder / "cli.seg.nrrd"),
                    "--slice", str(key), "--box", *map(str, box), "--device", "cpu", "--overwrite"],
                   check=True, capture_output=True)
    return time.perf_counter() - started


def page(station, volume_path: Path, key: int, corners, folder: Path) -> float:
    with headless_chromium(folder / f"profile-{time.monotonic_ns()}") as driver:
        driver.set_window_size(*WINDOW)
        open_page(driver, station.url)
        upload(driver, volume_path)
        show_red_slice(driver, key)
        draw_box_on_red(driver, *corners)
        started = time.perf_counter()
        if click_and_wait_run(driver) != "done":
            raise RuntimeError("the page's run did not finish")
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    volume, organs = abdominal_phantom()
    key, corners = demo_box_ras(volume, organs[DEMO_TARGET])
    box = [round(float(v)) for v in volume.geometry.ras_to_continuous_index(corners[0])[:2]] + \
          [round(float(v)) for v in volume.geometry.ras_to_continuous_index(corners[1])[:2]]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        os.environ[CACHE_ENVIRONMENT_VARIABLE] = str(folder / "converted")
        volume_path = write_volume(volume, folder / "demo.nrrd")
        command_line(volume_path, key, box, folder)  # converts and caches the encoders
        cli_times, page_times = [], []
        with running_workstation(folder / "workstation") as station:
            for _ in range(args.runs):
                cli_times.append(command_line(volume_path, key, box, folder))
                page_times.append(page(station, volume_path, key, corners, folder))
    cli, web = statistics.median(cli_times), statistics.median(page_times)
    print(f"command line: {', '.join(f'{t:.1f}' for t in cli_times)} s (median {cli:.1f} s)")
    print(f"page:         {', '.join(f'{t:.1f}' for t in page_times)} s (median {web:.1f} s)")
    print(f"page / command line: {web / cli:.2f}")


if __name__ == "__main__":
    main()
