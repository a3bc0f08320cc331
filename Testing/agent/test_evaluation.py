"""`medsam-agent eval` on a small manifest built here: 2D images and a volume, its cases run as
batch rows on real worker processes."""

from __future__ import annotations

import contextlib
import csv
import io
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from MedSAMAgentLib import cli
from MedSAMAgentLib.agent.evaluation import agent_reward
from MedSAMAgentLib.agent.loop import Trajectory, Turn
from MedSAMAgentLib.agent.parsing import parse_action
from MedSAMAgentLib.agent.protocol import tool_call_text
from MedSAMAgentLib.agent.view import Letterbox
from MedSAMAgentLib.segmenters.base import slice_frames


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, phantom):
    tmp_path = tmp_path_factory.mktemp("eval_manifest")
    volume, organs = phantom
    frames = slice_frames(volume, "axial")
    rows = []
    for organ, index in (("right kidney", 18), ("liver", 36)):
        truth = frames.plane.to_display(organs[organ])[index]
        Image.fromarray(frames[index]).save(tmp_path / f"{organ}.png")
        Image.fromarray(truth.astype(np.uint8) * 255).save(tmp_path / f"{organ}_mask.png")
        rows.append({"image": f"{organ}.png", "mask": f"{organ}_mask.png", "description": organ})
    # Several targets in one case: a label map (right kidney 2, liver 1) and the labels column.
    kidney, liver = (frames.plane.to_display(organs[organ]) for organ in ("right kidney", "liver"))
    both = int(np.argmax(np.minimum(kidney.sum(axis=(1, 2)), liver.sum(axis=(1, 2)))))
    Image.fromarray(frames[both]).save(tmp_path / "both.png")
    Image.fromarray((kidney[both] * 2 + liver[both] * (1 - kidney[both])).astype(np.uint8)).save(tmp_path / "both_labels.png")
    rows.append({"image": "both.png", "mask": "both_labels.png", "description": "right kidney; liver", "labels": "2;1"})
    sitk.WriteImage(volume.geometry.apply_to(sitk.GetImageFromArray(volume.array)), str(tmp_path / "ct.nrrd"))
    kidney = volume.geometry.apply_to(sitk.GetImageFromArray(organs["right kidney"].astype(np.uint8)))
    sitk.WriteImage(kidney, str(tmp_path / "kidney.nrrd"))
    rows.append({"image": "ct.nrrd", "mask": "kidney.nrrd", "description": "right kidney"})
    path = tmp_path / "manifest.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "mask", "description", "labels"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def one_worker(manifest, tmp_path_factory) -> tuple[Path, str]:
    """The manifest evaluated on one worker: (its folder, what it printed)."""
    out = tmp_path_factory.mktemp("eval") / "report"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert cli.main(["eval", str(manifest), "-o", str(out), "--policy", "clinician", "--tolerance", "2"]) == 0
    return out, printed.getvalue()


def test_eval_writes_per_case_and_summary_tables(manifest, one_worker):
    out, printed = one_worker
    with open(out / "cases.csv") as handle:
        cases = list(csv.DictReader(handle))
    assert len(cases) == 5 and not any(case["error"] for case in cases)
    assert [(case["case"], case["description"]) for case in cases[2:4]] == [("3", "right kidney"), ("3", "liver")]
    for case in cases:
        assert 0.85 <= float(case["dice"]) <= 1 and 0 < float(case["iou"]) <= float(case["dice"])
        assert 0.5 <= float(case["nsd"]) <= 1 and math.isfinite(float(case["hd95"]))
        assert 1 <= int(case["actions"]) <= 5 and case["round_dice"]
        assert 0.2 <= float(case["reward"]) <= 1
    assert cases[4]["image"].endswith("ct.nrrd")  # the volume case ran the whole flow
    with open(out / "summary.csv") as handle:
        summary = {row["description"]: row for row in csv.DictReader(handle)}
    assert set(summary) == {"right kidney", "liver", "overall"} and summary["overall"]["cases"] == "5"
    assert summary["right kidney"]["cases"] == "3"
    assert (out / "summary.md").read_text().startswith("| description |")
    assert "overall" in printed
    assert cli.main(["eval", str(manifest), "-o", str(out), "--policy", "clinician"]) == cli.EXIT_USER_ERROR


def test_bad_manifest(tmp_path, capsys):
    path = tmp_path / "m.csv"
    for content, message in (("image,mask,description\na.png,,liver\n", "case 1 lacks mask"),
                             ("image,mask,description,labels\na.png,m.png,liver; spleen,1\n", "case 1: 2 targets but 1 labels"),
                             ("image,mask,description,labels\na.png,m.png,liver,one\n", "labels 'one' are not whole numbers")):
        path.write_text(content)
        assert cli.main(["eval", str(path), "-o", str(tmp_path / "r"), "--policy", "clinician"]) == cli.EXIT_USER_ERROR
        assert message in capsys.readouterr().err


def test_an_agent_model_that_is_not_here_is_refused_once_before_anything_is_written(tmp_path, manifest, capsys):
    out = tmp_path / "report"
    assert cli.main(["eval", str(manifest), "-o", str(out), "--policy", "qwen", "--agent-model", str(tmp_path / "none")]) == cli.EXIT_USER_ERROR
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "agent model not found" in errors[0]
    assert not out.exists()


def test_reward_matches_the_training_formula():
    truth = np.zeros((10, 10), bool)
    truth[2:8, 2:8] = True  # 36 pixels
    first, second = np.zeros_like(truth), truth.copy()
    first[2:8, 2:5] = True  # IoU 0.5
    trajectory = Trajectory("x", Letterbox.fit(truth.shape), end_reason="stop_action", mask=second)
    for number, mask in ((1, first), (2, second)):
        trajectory.turns.append(Turn(number, "", parse_action(tool_call_text("add_bbox", {"bbox_2d": [1, 1, 9, 9]})), None, mask=mask))
    trajectory.turns.append(Turn(3, "", parse_action(tool_call_text("stop_action", {})), None))
    quality = 0.5 * 1.0 + 0.5 * 1.0 - (0.0 + 0.01 * 2) + 0.1 * 0.5
    assert agent_reward(trajectory, truth) == pytest.approx(0.2 * 1.0 + 0.8 * min(1.0, quality))


def read_cases(folder) -> list[dict]:
    """cases.csv, without the seconds each case took."""
    with open(folder / "cases.csv") as handle:
        return [{key: value for key, value in case.items() if key != "seconds"} for case in csv.DictReader(handle)]


def test_an_interrupted_evaluation_resumes_on_two_workers_with_what_one_worker_scored(tmp_path, manifest, one_worker, capsys):
    """An evaluation cut short (two targets' scores lost, a 2D one and the volume, and no
    tables yet) refuses other options, then runs those two targets alone, one on each of two
    workers (each with half the cores the first run's worker had), and ends with the same tables."""
    base = ["eval", str(manifest), "--policy", "clinician"]
    cases = read_cases(one_worker[0])
    cut_short = shutil.copytree(one_worker[0], tmp_path / "cut_short")
    for name in ("case003_liver", "case004"):
        (cut_short / "scores" / f"{name}.json").unlink()
    (cut_short / "cases.csv").unlink()
    assert cli.main([*base, "-o", str(cut_short), "--tolerance", "3"]) == cli.EXIT_USER_ERROR
    assert "holds an evaluation with --tolerance 2.0 (now 3.0)" in capsys.readouterr().err
    logs = {log.name: log.read_text() for log in (cut_short / "logs").iterdir()}
    assert cli.main([*base, "-o", str(cut_short), "--workers", "2"]) == 0
    err = capsys.readouterr().err
    assert "3 targets were scored by an earlier run and kept" in err and "running 2 rows on 2 local worker processes" in err
    ran = {log.name: log.read_text()[len(logs[log.name]):] for log in (cut_short / "logs").iterdir() if log.read_text() != logs[log.name]}
    assert sorted(ran) == ["row0004.log", "row0005.log"], "only the targets whose scores were lost ran again"
    assert len({re.search(r"pid (\d+)", text).group(1) for text in ran.values()}) == 2, "one on each worker"
    assert read_cases(cut_short) == cases
