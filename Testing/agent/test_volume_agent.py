"""From a description to a 3D mask: key-slice search, propagation from the agent's mask,
reviews, trajectories on disk, and the `segment --target` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from MedSAMAgentLib import cli, segmenters
from MedSAMAgentLib.agent.loop import Trajectory, Turn
from MedSAMAgentLib.agent.parsing import parse_action
from MedSAMAgentLib.agent.protocol import tool_call_text
from MedSAMAgentLib.agent.records import read_records
from MedSAMAgentLib.agent.view import Letterbox
from MedSAMAgentLib.agent.volume_agent import choose_key_slice, review_slices, search_slices
from MedSAMAgentLib.errors import MedSAMAgentError
from MedSAMAgentLib.metrics import dice
from MedSAMAgentLib.prompts import Box
from Testing.fixtures.chat_server import ScriptedChatServer


def finished(area: int, score: float) -> Trajectory:
    trajectory = Trajectory("x", Letterbox.fit((40, 40)))
    mask = np.zeros((40, 40), bool)
    mask.flat[:area] = True
    trajectory.mask, trajectory.score = (mask if area else None), score
    trajectory.turns.append(Turn(1, "", parse_action(tool_call_text("stop_action", {})), None))
    return trajectory


def test_key_slice_is_the_largest_confident_result():
    search = {5: finished(300, 0.95), 10: finished(500, 0.90), 15: finished(900, 0.60), 20: finished(0, 0.0)}
    assert choose_key_slice(search) == 10  # 15 is larger but unsure; 20 found nothing
    with pytest.raises(MedSAMAgentError, match="found the target on none of the slices"):
        choose_key_slice({1: finished(0, 0.0)})
    assert search_slices(100) == [10, 23, 36, 50, 63, 76, 89]  # the middle 80%
    assert search_slices(100, (40, 60)) == [42, 45, 47, 50, 53, 55, 58]


def test_review_slices_every_n_and_at_area_jumps():
    stack = np.zeros((30, 20, 20), bool)
    for index in range(5, 26):
        stack[index, :10, :10] = True
    stack[17, :3, :3] = True  # the area collapses on slice 17
    stack[17, 3:] = False
    stack[17, :, 3:] = False
    chosen = review_slices(stack, key=12, every=5)
    assert 17 in chosen and {7, 22}.issubset(chosen) and 12 not in chosen
    assert review_slices(stack, key=12, every=5, skip={17}) == [7, 22]


@pytest.fixture
def phantom_files(tmp_path, phantom):
    volume, organs = phantom
    image = volume.geometry.apply_to(sitk.GetImageFromArray(volume.array))
    sitk.WriteImage(image, str(tmp_path / "ct.nrrd"))
    truth = volume.geometry.apply_to(sitk.GetImageFromArray(organs["right kidney"].astype(np.uint8)))
    sitk.WriteImage(truth, str(tmp_path / "kidney.nii.gz"))
    return tmp_path / "ct.nrrd", tmp_path / "kidney.nii.gz", organs["right kidney"]


def test_target_with_the_clinician_finds_the_slice_reviews_and_saves_turns(tmp_path, phantom_files, litemedsam, monkeypatch, capsys):
    monkeypatch.setattr(segmenters, "create_segmenter", lambda *a, **k: litemedsam)
    source, truth_path, truth = phantom_files
    output, turns = tmp_path / "kidney.seg.nrrd", tmp_path / "turns"
    status = cli.main([
        "segment", str(source), "--target", "right kidney in abdomen CT", "-o", str(output), "--find-slice",
        "--policy", "clinician", "--gt", str(truth_path), "--recheck", "8", "--save-trajectory", str(turns),
    ])
    assert status == 0, capsys.readouterr().err
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(output))) > 0
    assert dice(labels, truth) >= 0.9
    record = json.loads((turns / "trajectory.json").read_text())
    key = record["outcome"]["key_slice"]
    assert truth[key].sum() >= 0.8 * truth.sum(axis=(1, 2)).max()  # the search picked a large cross-section
    runs = {role: [run for run in record["runs"] if run["role"] == role] for role in ("key", "search", "review")}
    assert [run["slice_index"] for run in runs["key"]] == [key]
    assert len(runs["search"]) == 6 and runs["review"]  # the key slice was one of the 7 searched
    for run in record["runs"]:  # each agent run its own sub-record: its turns and a picture per turn
        assert len(list((turns / run["folder"]).glob("turn*.png"))) == run["turns"] > 0
    assert runs["key"][0]["folder"] == f"01_key_slice{key:04d}"
    outcome, records = read_records(turns)
    assert outcome["status"] == "done" and records[0].role == "key" and len(records) == len(record["runs"])
    key_run = records[0]
    assert key_run.turns[0].kind == "box" and key_run.turns[0].picture_png.startswith(b"\x89PNG")
    # the truth is known (--gt): the Dice after each turn, the last one that of the key slice's final mask
    assert key_run.turns[0].dice is not None and 0.9 <= [t.dice for t in key_run.turns if t.dice is not None][-1] <= 1
    header = sitk.ReadImage(str(output))
    assert header.GetMetaData("Segment0_Name") == "right kidney"


def test_target_through_an_endpoint_segments_the_volume(tmp_path, phantom_files, phantom, litemedsam, monkeypatch):
    monkeypatch.setattr(segmenters, "create_segmenter", lambda *a, **k: litemedsam)
    source, _, truth = phantom_files
    from MedSAMAgentLib.segmenters.base import slice_frames

    frames = slice_frames(phantom[0], "axial")
    display_truth = frames.plane.to_display(truth)
    key = int(np.argmax(display_truth.sum(axis=(1, 2))))
    letterbox = Letterbox.fit(frames.image_shape, frames.pixel_spacing)
    box = Box.around(display_truth[key], margin=3)
    grid = [*letterbox.to_grid(box.x0, box.y0), *letterbox.to_grid(box.x1, box.y1)]
    script = [{"content": tool_call_text("add_bbox", {"bbox_2d": grid})}, {"content": tool_call_text("stop_action", {})}]
    output = tmp_path / "result.nii.gz"
    with ScriptedChatServer(script) as server:
        status = cli.main([
            "segment", str(source), "--target", "right kidney", "-o", str(output), "--slice", str(key),
            "--policy", "endpoint", "--endpoint", server.url, "--agent-model", "medsam-agent",
        ])
    assert status == 0
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(output))) > 0
    assert dice(labels, truth) >= 0.9


def test_target_errors(tmp_path, phantom_files, capsys):
    source, truth_path, _ = phantom_files
    base = ["segment", str(source), "--target", "right kidney", "-o", str(tmp_path / "out.nrrd")]
    cases = [
        (["--slice", "5", "--box", "1", "1", "9", "9"], "give either --target"),
        ([], "give the key slice with --slice K, or --find-slice"),
        (["--slice", "5", "--find-slice"], "give the key slice with --slice K, or --find-slice"),
        (["--slice", "5", "--policy", "clinician"], "give it with --gt MASK"),
        (["--slice", "5", "--policy", "endpoint"], "needs --endpoint URL"),
    ]
    for extra, message in cases:
        assert cli.main(base + extra) == cli.EXIT_USER_ERROR
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out.nrrd").exists()
