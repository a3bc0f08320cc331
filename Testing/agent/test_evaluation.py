"""`medsam-agent eval` on a small manifest built here: 2D images and a volume."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from MedSAMAgentLib import cli, segmenters
from MedSAMAgentLib.agent.evaluation import agent_reward
from MedSAMAgentLib.agent.loop import Trajectory, Turn
from MedSAMAgentLib.agent.parsing import parse_action
from MedSAMAgentLib.agent.protocol import tool_call_text
from MedSAMAgentLib.agent.view import Letterbox
from MedSAMAgentLib.segmenters.base import slice_frames


@pytest.fixture
def manifest(tmp_path, phantom):
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


def test_eval_writes_per_case_and_summary_tables(tmp_path, manifest, litemedsam, monkeypatch, capsys):
    monkeypatch.setattr(segmenters, "create_segmenter", lambda *a, **k: litemedsam)
    out = tmp_path / "report"
    assert cli.main(["eval", str(manifest), "-o", str(out), "--policy", "clinician", "--tolerance", "2"]) == 0
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
    assert "overall" in capsys.readouterr().out
    assert cli.main(["eval", str(manifest), "-o", str(out), "--policy", "clinician"]) == cli.EXIT_USER_ERROR


def test_bad_manifest(tmp_path, capsys):
    path = tmp_path / "m.csv"
    for content, message in (("image,mask,description\na.png,,liver\n", "case 1 lacks mask"),
                             ("image,mask,description,labels\na.png,m.png,liver; spleen,1\n", "case 1: 2 targets but 1 labels"),
                             ("image,mask,description,labels\na.png,m.png,liver,one\n", "labels 'one' are not whole numbers")):
        path.write_text(content)
        assert cli.main(["eval", str(path), "-o", str(tmp_path / "r"), "--policy", "clinician"]) == cli.EXIT_USER_ERROR
        assert message in capsys.readouterr().err


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
