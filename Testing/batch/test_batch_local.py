"""`medsam-agent batch` on this machine: every row's output equals `segment`'s for the same
options, bad rows are reported and the others written, a worker killed mid-row loses
nothing, a second run skips every finished row and `--overwrite` runs it again. Real
volumes, the real engine with LiteMedSAM, real worker processes."""

from __future__ import annotations

import csv
import json
import threading

import pytest

from MedSAMAgentLib import cli
from MedSAMAgentLib.cli.batch import EXIT_SOME_ROWS_FAILED
from MedSAMAgentLib.cli.cohort.manifest import read_manifest
from MedSAMAgentLib.errors import InputImageError
from Testing.fixtures.cohort import (
    AGENT_OPTIONS,
    assert_bad_rows_reported,
    assert_same_outputs,
    assert_written_once,
    kill_first_worker_in_the_middle_of_its_row,
    no_partial_files,
    read_results,
)


def test_rows_equal_segment_bad_rows_are_reported_and_a_second_run_skips_what_is_done(cohort, tmp_path, capsys):
    """Two local workers, one of them killed in the middle of its first row: that row runs
    again on a new worker, and every output is `segment`'s."""
    folder = tmp_path / "out"
    killed: list[int] = []
    killer = threading.Thread(target=kill_first_worker_in_the_middle_of_its_row, args=(folder / "logs", killed), daemon=True)
    killer.start()
    assert cli.main(["batch", str(cohort.manifest), "-o", str(folder), "--workers", "2", *AGENT_OPTIONS]) == EXIT_SOME_ROWS_FAILED
    killer.join(timeout=5)
    errors = capsys.readouterr().err
    assert "error: row 6" in errors and "error: row 7" in errors and "5 done, 0 skipped, 2 failed" in errors
    assert killed and "the worker running row" in errors
    results = read_results(folder)
    assert [results[name]["status"] for name in cohort.good_outputs] == ["done"] * 5
    assert all(int(results[name]["voxels"]) > 0 and float(results[name]["ml"]) > 0 for name in cohort.good_outputs)
    assert all(float(results[name]["worker_peak_mb"]) > 100 for name in cohort.good_outputs)
    assert_bad_rows_reported(results, folder)
    assert_same_outputs(cohort, folder)
    assert_written_once(folder, killed[0])
    assert (folder / "records" / "phantom_right_kidney_seg_nrrd" / "trajectory.json").is_file()
    assert no_partial_files(folder) == []

    written = {name: (folder / name).stat().st_mtime_ns for name in cohort.good_outputs}
    assert cli.main(["batch", str(cohort.manifest), "-o", str(folder), *AGENT_OPTIONS]) == EXIT_SOME_ROWS_FAILED
    assert "0 done, 5 skipped, 2 failed" in capsys.readouterr().err
    again = read_results(folder)
    assert [again[name]["status"] for name in cohort.good_outputs] == ["skipped"] * 5
    assert [again[name]["voxels"] for name in cohort.good_outputs] == [results[name]["voxels"] for name in cohort.good_outputs]
    assert {name: (folder / name).stat().st_mtime_ns for name in cohort.good_outputs} == written


@pytest.fixture
def phantom_ct(tmp_path):
    """The phantom as ct.nrrd in `tmp_path`."""
    from MedSAMAgentLib.io.writers import write_volume
    from MedSAMAgentLib.phantom import abdominal_phantom

    write_volume(abdominal_phantom()[0], tmp_path / "ct.nrrd")
    return tmp_path / "ct.nrrd"


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ([{"image": "a.nrrd", "boxes": "1 2 3 4"}], "unknown column 'boxes'"),
        ([], "has no rows"),
    ],
)
def test_a_manifest_that_cannot_mean_anything_is_refused_as_a_whole(tmp_path, rows, reason):
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, sorted({key for row in rows for key in row}) or ["image"])
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(InputImageError, match=reason):
        read_manifest(manifest)


def test_rows_that_cannot_run_are_refused_before_any_model_loads(phantom_ct, tmp_path, capsys):
    """Bad rows of a JSON manifest, each refused with its own line before any model loads;
    the good row runs, and runs again with --overwrite."""
    box, kidney = "39 95 72 124", {"image": "ct.nrrd", "slice": 17, "range": "16 18"}
    rows = [
        {**kidney, "box": "39 95 72", "output": "short_box.nrrd"},
        {**kidney, "box": box, "points": "40 100 maybe", "output": "bad_point.nrrd"},
        {**kidney, "slice": 99, "box": box, "output": "bad_slice.nrrd"},
        {**kidney, "box": box, "output": "../outside.nrrd"},
        {**kidney, "box": box, "output": "twice.nrrd"},
        {**kidney, "box": box, "output": "twice.nrrd"},
        {"image": "ct.nrrd", "output": "no_prompt.nrrd"},
        {**kidney, "image": "truncated.nrrd", "box": box, "output": "truncated_out.nrrd"},
    ]
    manifest = tmp_path / "rows.json"
    manifest.write_text(json.dumps(rows))
    (tmp_path / "truncated.nrrd").write_bytes(phantom_ct.read_bytes()[:5000])
    folder = tmp_path / "out"
    assert cli.main(["batch", str(manifest), "-o", str(folder), "--workers", "2"]) == EXIT_SOME_ROWS_FAILED
    with open(folder / "results.csv", newline="") as handle:
        results = {int(line["row"]): line for line in csv.DictReader(handle)}
    errors = capsys.readouterr().err
    assert [results[row]["status"] for row in range(1, 9)] == ["failed"] * 4 + ["done"] + ["failed"] * 3
    for row, reason in [(1, "expected 4 arguments"), (2, "pos or neg"), (3, "99"), (4, "outside the output folder"),
                        (6, "row 5 writes twice.nrrd too"), (7, "key slice"), (8, "is truncated")]:
        assert reason in results[row]["error"] and f"error: row {row} " in errors, (row, results[row])
    assert sorted(path.name for path in folder.iterdir()) == ["logs", "results.csv", "twice.nrrd"]

    written = (folder / "twice.nrrd").stat().st_mtime_ns
    assert cli.main(["batch", str(manifest), "-o", str(folder), "--overwrite"]) == EXIT_SOME_ROWS_FAILED
    with open(folder / "results.csv", newline="") as handle:
        assert [line["status"] for line in csv.DictReader(handle)][4] == "done"
    assert (folder / "twice.nrrd").stat().st_mtime_ns != written, "--overwrite runs a finished row again"


def test_a_row_whose_target_failed_runs_again_though_the_others_were_written(phantom_ct, tmp_path, capsys):
    """Right kidney and spleen in one row, the ground truth lacking the spleen: the kidney is
    written, the spleen fails. Run again once the truth has it, the row is not taken for
    finished: it runs and writes both."""
    import numpy as np

    from MedSAMAgentLib.io.volumes import Volume
    from MedSAMAgentLib.io.writers import write_volume
    from MedSAMAgentLib.orientation import SlicePlane
    from MedSAMAgentLib.phantom import abdominal_phantom

    volume, organs = abdominal_phantom()
    plane = SlicePlane.for_view(volume.geometry, "axial")
    kidney, spleen = (plane.to_display(organs[name]).sum(axis=(1, 2)) for name in ("right kidney", "spleen"))
    key = int(np.argmax(np.minimum(kidney, spleen)))

    def write_truth(labels: np.ndarray) -> None:
        write_volume(Volume(labels.astype(np.uint8), volume.geometry, "CT", "truth"), tmp_path / "truth.nrrd")

    write_truth(organs["right kidney"])  # label 1 only: nothing for the spleen, label 2
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"image,target,slice,range,gt,output\nct.nrrd,right kidney; spleen,{key},{key - 1} {key + 1},truth.nrrd,both.seg.nrrd\n")
    folder = tmp_path / "out"
    assert cli.main(["batch", str(manifest), "-o", str(folder), *AGENT_OPTIONS]) == EXIT_SOME_ROWS_FAILED
    first = read_results(folder)["both.seg.nrrd"]
    assert first["status"] == "failed" and "'spleen' failed" in first["error"] and first["segments"] == "right kidney"
    assert "0 done, 0 skipped, 1 failed" in capsys.readouterr().err

    write_truth(organs["right kidney"] + 2 * organs["spleen"])
    assert cli.main(["batch", str(manifest), "-o", str(folder), *AGENT_OPTIONS]) == 0
    assert "1 done, 0 skipped, 0 failed" in capsys.readouterr().err
    again = read_results(folder)["both.seg.nrrd"]
    assert again["status"] == "done" and again["segments"] == "right kidney;spleen", again
    assert all(int(voxels) > 0 for voxels in again["voxels"].split(";"))
