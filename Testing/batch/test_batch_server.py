"""`medsam-agent batch --server URL` from the thin client (no torch, no Ray): each row goes
to a real department server exactly as `segment --server`, and comes back as `segment`
writes it here, voxel for voxel."""

from __future__ import annotations

import csv

from Testing.fixtures.cohort import assert_same_outputs, read_results
from Testing.fixtures.server import ServerProcess, run_thin_client


def test_the_thin_client_sends_each_row_to_the_server(cohort, keys, tmp_path):
    box_rows = [row for row in cohort.rows if row["output"] in ("brain1_tumour.nii.gz", "ct_kidney.seg.nrrd")]
    manifest = cohort.manifest.with_name("server_rows.csv")
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["image", "slice", "box", "range", "output"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(box_rows)
    folder = tmp_path / "out"
    with ServerProcess(tmp_path, tmp_path / "store", "--no-agent", keys=keys[0]) as server:
        batch = run_thin_client("batch", str(manifest), "-o", str(folder), "--server", server.url, "--workers", "2",
                                key=keys[1]["alice"])
    assert batch.returncode == 0, batch.stderr
    results = read_results(folder)
    assert sorted(results) == ["brain1_tumour.nii.gz", "ct_kidney.seg.nrrd"]
    assert all(line["status"] == "done" for line in results.values())
    only_these = {row["output"]: cohort.references[row["output"]] for row in box_rows}
    assert_same_outputs(type(cohort)(manifest, box_rows, only_these), folder)
