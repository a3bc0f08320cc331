"""`medsam-agent batch --ray`: a local Ray cluster of two cores (started and stopped by the
test session) runs the cohort on two actors, each holding the in-process engine, and one
of them is killed in the middle of its first row: that row runs again on another actor,
nothing is lost, nothing is written twice, and the outputs are `segment`'s, voxel for
voxel."""

from __future__ import annotations

import threading

from MedSAMAgentLib import cli
from MedSAMAgentLib.cli.batch import EXIT_SOME_ROWS_FAILED
from Testing.fixtures.cohort import (
    AGENT_OPTIONS,
    assert_bad_rows_reported,
    assert_same_outputs,
    assert_written_once,
    kill_first_worker_in_the_middle_of_its_row,
    no_partial_files,
    read_results,
)

RAY_OPTIONS = ["--ray", "auto", "--cores-per-worker", "1"]


def test_two_actors_write_what_segment_writes_and_a_killed_one_has_its_row_run_again(cohort, ray_cluster, tmp_path):
    folder = tmp_path / "out"
    killed: list[int] = []
    killer = threading.Thread(target=kill_first_worker_in_the_middle_of_its_row, args=(folder / "logs", killed), daemon=True)
    killer.start()
    assert cli.main(["batch", str(cohort.manifest), "-o", str(folder), *RAY_OPTIONS, *AGENT_OPTIONS]) == EXIT_SOME_ROWS_FAILED
    killer.join(timeout=5)
    assert killed, "no worker was killed"
    results = read_results(folder)
    assert [results[name]["status"] for name in cohort.good_outputs] == ["done"] * 5
    assert len({results[name]["worker"] for name in cohort.good_outputs}) >= 2, "the surviving actor and the new one took rows"
    assert_bad_rows_reported(results, folder)
    assert_same_outputs(cohort, folder)
    assert_written_once(folder, killed[0])
    assert no_partial_files(folder) == []
