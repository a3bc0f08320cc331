"""`medsam-agent eval --ray`: the evaluation's cases run as rows on two actors of the batch
tests' local Ray cluster, each actor holding the in-process engine, and score exactly what
the same cases score on a local worker: the same per-case Dice and other metrics, and the
same agent records (every turn's prompt, mask size and Dice, and its picture, byte for
byte). Two of the cheapest real cases: the phantom's kidney on one slice (a 2D case, one
agent loop) and pyradiomics' CT lung tumour `lung1` (a volume, the whole flow)."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from MedSAMAgentLib import cli
from Testing.fixtures.cohort import AGENT_OPTIONS, RAY_OPTIONS, records_without_times


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, phantom) -> Path:
    from MedSAMAgentLib.segmenters.base import slice_frames
    from Testing.fixtures.anatomy import PYRADIOMICS_DATA, lesion

    folder = tmp_path_factory.mktemp("eval_on_ray")
    volume, organs = phantom
    frames = slice_frames(volume, "axial")
    kidney_slice = 18
    truth = frames.plane.to_display(organs["right kidney"])[kidney_slice]
    Image.fromarray(frames[kidney_slice]).save(folder / "kidney.png")
    Image.fromarray(truth.astype(np.uint8) * 255).save(folder / "kidney_mask.png")
    lung, _ = lesion("lung1")  # installed by scripts/setup.sh --test, or a clear error
    path = folder / "manifest.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "mask", "description"])
        writer.writerow(["kidney.png", "kidney_mask.png", "right kidney"])
        writer.writerow([lung, PYRADIOMICS_DATA / "lung1_label.nrrd", "lung tumour"])
    return path


def cases_without_times(folder: Path) -> list[dict[str, str]]:
    """cases.csv without the seconds each case took (the one column a run may change)."""
    with open(folder / "cases.csv", newline="") as handle:
        return [{key: value for key, value in case.items() if key != "seconds"} for case in csv.DictReader(handle)]


def worker_pids(folder: Path) -> set[int]:
    """The processes that ran the rows, as the first line of each row's log names them."""
    first_lines = (log.read_text().splitlines()[0] for log in (folder / "logs").iterdir())
    return {int(re.fullmatch(r"row \d+, attempt 1, on .* pid (\d+)", line).group(1)) for line in first_lines}


def test_eval_on_two_ray_actors_scores_each_case_as_a_local_eval_does(manifest, ray_cluster, tmp_path, capsys):
    here, on_ray = tmp_path / "local", tmp_path / "ray"
    assert cli.main(["eval", str(manifest), "-o", str(here), *AGENT_OPTIONS]) == 0
    assert "running 2 rows on 1 local worker processes" in capsys.readouterr().err
    assert cli.main(["eval", str(manifest), "-o", str(on_ray), *AGENT_OPTIONS, *RAY_OPTIONS]) == 0
    assert "running 2 rows on 2 Ray actors of 1 cores each" in capsys.readouterr().err

    cases = cases_without_times(on_ray)
    assert [(case["description"], case["error"]) for case in cases] == [("right kidney", ""), ("lung tumour", "")]
    # What the simulated clinician reaches on these cases: equal scores must not be equally broken ones.
    assert float(cases[0]["dice"]) >= 0.9 and float(cases[1]["dice"]) >= 0.7, cases
    assert cases == cases_without_times(here)
    assert records_without_times(on_ray) == records_without_times(here)
    ray_workers = worker_pids(on_ray)
    assert len(ray_workers) == 2, "one case on each actor"
    assert not ray_workers & (worker_pids(here) | {os.getpid()})
