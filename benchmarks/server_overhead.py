"""What the department server costs and gives, on localhost, against this computer's engine.

- Upload: a 512x512xN CT-like volume (the abdominal phantom at that size, with its 10 HU
  noise): raw and compressed bytes (the ratio), seconds to hash, compress and upload.
- Per-job overhead: the same job (a box, a few slices of LiteMedSAM) run here and on the
  server (volume already stored), alternately, median of several runs. What the server
  adds (hashing, HTTP, queue, result transfer) is the client's wall time minus the engine's
  own time in the server process, which the result reports: a figure that other load on
  the machine does not blur the way a difference of two runs would.
- Throughput: jobs per minute with 4 clients at once against 1 client, same server.
- GPU (when this machine has CUDA): the seconds of a MedSAM2 job on the server.

    python benchmarks/server_overhead.py [--slices 300] [--runs 3] [--jobs-per-client 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from MedSAMAgentLib.engine.interface import SegmentationRequest  # noqa: E402
from MedSAMAgentLib.engine.local import LocalEngine  # noqa: E402
from MedSAMAgentLib.orientation import SlicePlane  # noqa: E402
from MedSAMAgentLib.phantom import abdominal_phantom  # noqa: E402
from MedSAMAgentLib.prompts import Box, SlicePrompts  # noqa: E402
from MedSAMAgentLib.remote import RemoteEngine, wire  # noqa: E402
from Testing.fixtures.server import ServerProcess, add_key  # noqa: E402

HALF_RANGE = 2


def kidney_job(volume, organs, shift: int = 0) -> SegmentationRequest:
    plane = SlicePlane.for_view(volume.geometry, "axial")
    truth = plane.to_display(organs["right kidney"])
    key = int(np.argmax(truth.sum(axis=(1, 2)))) + shift
    return SegmentationRequest(volume, key_slice=key, prompts=SlicePrompts(box=Box.around(truth[key], 4)),
                               slice_range=(key - HALF_RANGE, key + HALF_RANGE))


def timed(function, *arguments):
    started = time.perf_counter()
    result = function(*arguments)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs-per-client", type=int, default=2)
    args = parser.parse_args()

    volume, organs = abdominal_phantom(size=(512, 512, args.slices), spacing=(0.7, 0.7, 1.0))
    volume.array = volume.array.astype(np.int16)
    print(f"volume: {volume.geometry.size} int16, {volume.array.nbytes / 2**20:.0f} MB raw")
    hash_seconds, _ = timed(wire.volume_digest, volume)
    encode_seconds, (_, blob) = timed(wire.encode_volume, volume)
    print(f"hash {hash_seconds:.2f} s; hash+shuffle+zstd {encode_seconds:.2f} s; compressed {len(blob) / 2**20:.1f} MB, "
          f"ratio {volume.array.nbytes / len(blob):.1f}x")

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        key = add_key(folder / "keys", "bench")
        local = LocalEngine("litemedsam", device="cpu")
        with ServerProcess(folder, folder / "store", "--no-agent", "--queue-size", "64", keys=folder / "keys") as server:
            remote = RemoteEngine(server.url, api_key=key)
            job = kidney_job(volume, organs)
            upload_seconds, _ = timed(remote.run, job)
            print(f"first remote job, with the upload: {upload_seconds:.2f} s")
            here, there, overhead = [], [], []
            for _ in range(args.runs):
                here.append(timed(local.run, job)[0])
                seconds, outcome = timed(remote.run, job)
                there.append(seconds)
                overhead.append(seconds - outcome.seconds)
            here, there, overhead = statistics.median(here), statistics.median(there), statistics.median(overhead)
            print(f"job here {here:.2f} s, on the server {there:.2f} s (median of {args.runs}, alternating), ratio {there / here:.2f}; "
                  f"the server's overhead over its own engine time {overhead:.2f} s ({overhead / there:.0%} of the remote job)")

            jobs = [kidney_job(volume, organs, shift) for shift in (-2, -1, 1, 2)]
            one_seconds, _ = timed(lambda: [remote.run(job) for job in jobs[:1] * (4 * args.jobs_per_client)])
            four_seconds = run_clients(server.url, key, jobs, args.jobs_per_client)
            total = 4 * args.jobs_per_client
            print(f"throughput: 1 client {60 * total / one_seconds:.1f} jobs/min, 4 clients {60 * total / four_seconds:.1f} jobs/min, "
                  f"ratio {one_seconds / four_seconds:.2f}")
    gpu_job(volume, organs)


def run_clients(url: str, key: str, jobs, per_client: int) -> float:
    failures = []

    def client(job):
        engine = RemoteEngine(url, api_key=key)
        for _ in range(per_client):
            try:
                engine.run(job)
            except Exception as error:  # noqa: BLE001 - reported
                failures.append(str(error))

    threads = [threading.Thread(target=client, args=(job,)) for job in jobs]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"clients failed: {failures}")
    return time.perf_counter() - started


def gpu_job(volume, organs) -> None:
    import torch

    if not torch.cuda.is_available():
        print("GPU: none on this machine; the MedSAM2 server time on GPU is not measured")
        return
    from MedSAMAgentLib.segmenters.medsam2 import build_model

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        checkpoint = folder / "medsam2_random.pt"
        torch.save({"model": build_model().state_dict()}, checkpoint)
        key = add_key(folder / "keys", "bench")
        with ServerProcess(folder, folder / "store", "--no-agent", "--segmenter", "medsam2", "--checkpoint", str(checkpoint),
                           keys=folder / "keys", device="cuda") as server:
            remote = RemoteEngine(server.url, api_key=key)
            job = kidney_job(volume, organs)
            job.slice_range = None
            remote.run(job)
            seconds = [timed(remote.run, job)[0] for _ in range(3)]
            print(f"GPU: a MedSAM2 job (random weights) on the server {statistics.median(seconds):.2f} s")


if __name__ == "__main__":
    main()
