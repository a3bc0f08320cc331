"""The agent's record folder: written whole, read back as it was, never over other files."""

from __future__ import annotations

import json

import pytest

from MedSAMAgentLib.agent.records import read_records, write_records
from MedSAMAgentLib.agent.view import Letterbox
from MedSAMAgentLib.errors import MedSAMAgentError, OutputError
from MedSAMAgentLib.metrics import dice
from MedSAMAgentLib.prompts import SlicePrompts
from Testing.fixtures.records import two_runs
from Testing.fixtures.segmenters import box_mask


def test_a_record_folder_reads_back_exactly(tmp_path):
    records, truth = two_runs()
    folder = write_records(records, tmp_path / "record", {"status": "done", "key_slice": 12})
    index = json.loads((folder / "trajectory.json").read_text())
    assert [run["folder"] for run in index["runs"]] == ["01_key_slice0012", "02_review_slice0015"]
    assert [run["turns"] for run in index["runs"]] == [2, 2]  # the review: its opening box (turn 0), a stop
    assert sorted(p.name for p in (folder / "01_key_slice0012").iterdir()) == ["run.json", "turn01.png", "turn02.png"]
    outcome, back = read_records(folder)
    assert outcome == {"status": "done", "key_slice": 12}
    assert back == records  # every field, pictures included
    # Dice after the box (the segmenter fills the box exactly); the stop changed no mask
    box = Letterbox.fit(truth.shape).box_to_slice([300, 300, 700, 700])
    filled = box_mask(truth.shape, SlicePrompts(box=box))
    assert [turn.dice for turn in back[0].turns] == [round(dice(filled, truth), 4), None]
    assert all(turn.dice is None for turn in back[1].turns)  # no truth for the review


def test_a_new_record_replaces_an_earlier_one_whole(tmp_path):
    records, _ = two_runs()
    folder = write_records(records, tmp_path / "record", {"status": "done"})
    write_records(records[1:], folder, {"status": "failed", "error": "the agent found no 'liver'"})
    outcome, back = read_records(folder)
    assert outcome["status"] == "failed" and [r.role for r in back] == ["review"]
    assert sorted(p.name for p in folder.iterdir()) == ["01_review_slice0015", "trajectory.json"]  # nothing stale
    assert [p.name for p in tmp_path.iterdir()] == ["record"]  # no temporary folder left


def test_other_files_are_never_replaced(tmp_path):
    records, _ = two_runs()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    with pytest.raises(OutputError, match="holds other files; give a new or empty folder"):
        write_records(records, tmp_path / "notes", {"status": "done"})
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert read_records(write_records(records, empty, {"status": "done"}))[1] == records
    with pytest.raises(OutputError, match="does not exist"):
        write_records(records, tmp_path / "absent" / "record", {"status": "done"})


def test_an_incomplete_record_is_one_clear_error(tmp_path):
    records, _ = two_runs()
    folder = write_records(records, tmp_path / "record", {"status": "done"})
    (folder / "01_key_slice0012" / "turn02.png").unlink()
    with pytest.raises(MedSAMAgentError, match="not a complete agent record: turn02.png is missing"):
        read_records(folder)
    with pytest.raises(MedSAMAgentError, match="trajectory.json is missing"):
        read_records(tmp_path)
