"""`medsam-agent batch --server URL` from the thin client (no torch, no Ray): each row goes
to a real department server exactly as `segment --server`, and comes back as `segment`
writes it here, voxel for voxel. The batch is killed outright after its first row and
started again: it finishes the rest, and the first row is skipped, not redone."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time

from Testing.fixtures.cohort import assert_same_outputs, no_partial_files, read_results
from Testing.fixtures.server import CLIENT_PYTHON, ServerProcess, environment, run_thin_client

SERVER_ROWS = ("brain1_tumour.nii.gz", "ct_kidney.seg.nrrd")


def test_the_thin_client_sends_each_row_to_the_server_and_a_killed_batch_finishes_when_run_again(cohort, keys, tmp_path):
    box_rows = [row for row in cohort.rows if row["output"] in SERVER_ROWS]
    manifest = cohort.manifest.with_name("server_rows.csv")
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["image", "slice", "box", "range", "output"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(box_rows)
    folder, key = tmp_path / "out", keys[1]["alice"]
    arguments = ["batch", str(manifest), "-o", str(folder)]
    with ServerProcess(tmp_path, tmp_path / "store", "--no-agent", keys=keys[0]) as server:
        first = subprocess.Popen([str(CLIENT_PYTHON), "-m", "MedSAMAgentLib.cli", *arguments, "--server", server.url],
                                 env=environment(MEDSAM_AGENT_SERVER_KEY=key), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        try:
            wait_for_a_done_row(folder, first)
        finally:
            os.killpg(first.pid, signal.SIGKILL)  # the batch and its worker, as a crash would
            first.wait(30)
        again = run_thin_client(*arguments, "--server", server.url, "--workers", "2", key=key)
    assert again.returncode == 0, again.stderr
    results = read_results(folder)
    assert sorted(results) == sorted(SERVER_ROWS)
    assert sorted(line["status"] for line in results.values()) == ["done", "skipped"]
    assert "1 done, 1 skipped, 0 failed" in again.stderr
    assert no_partial_files(folder) == []
    only_these = {name: cohort.references[name] for name in SERVER_ROWS}
    assert_same_outputs(type(cohort)(manifest, box_rows, only_these), folder)


def wait_for_a_done_row(folder, batch: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert batch.poll() is None, "the batch ended before it could be killed"
        if (folder / "results.csv").is_file() and ",done," in (folder / "results.csv").read_text():
            return
        time.sleep(0.1)
    raise AssertionError("no row was done in time")
