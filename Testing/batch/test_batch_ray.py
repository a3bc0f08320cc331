"""`medsam-agent batch --ray`: a local Ray cluster of two cores (started and stopped by the
test session) runs the cohort on two actors, each holding the in-process engine, and one
of them is killed in the middle of its first row: that row runs again on another actor,
nothing is lost, nothing is written twice, and the outputs are `segment`'s, voxel for
voxel. With `--policy endpoint`, the two actors ask one OpenAI-compatible endpoint for
their agents' turns and write what a local worker writes."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

from MedSAMAgentLib import cli
from MedSAMAgentLib.cli.batch import EXIT_SOME_ROWS_FAILED
from Testing.fixtures.cohort import (
    AGENT_OPTIONS,
    RAY_OPTIONS,
    assert_bad_rows_reported,
    assert_same_outputs,
    assert_same_volume,
    assert_written_once,
    kill_first_worker_in_the_middle_of_its_row,
    no_partial_files,
    read_results,
    records_without_times,
)


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


@pytest.fixture(scope="module")
def kidney_rows(tmp_path_factory, phantom):
    """A manifest of two target rows on the phantom, the right and the left kidney, each on
    its largest slice and the two next to it; and the box (on the agent's 0-999 grid) around
    each kidney on that slice, by description."""
    from MedSAMAgentLib.agent.view import Letterbox
    from MedSAMAgentLib.io.writers import write_volume
    from MedSAMAgentLib.prompts import Box
    from MedSAMAgentLib.segmenters.base import slice_frames

    folder = tmp_path_factory.mktemp("kidneys")
    volume, organs = phantom
    write_volume(volume, folder / "phantom.nrrd")
    frames = slice_frames(volume, "axial")
    letterbox = Letterbox.fit(frames.image_shape, frames.pixel_spacing)
    lines, boxes = ["image,target,slice,range,output"], {}
    for organ in ("right kidney", "left kidney"):
        truth = frames.plane.to_display(organs[organ])
        key = int(np.argmax(truth.sum(axis=(1, 2))))
        box = Box.around(truth[key], margin=3)
        boxes[organ] = [*letterbox.to_grid(box.x0, box.y0), *letterbox.to_grid(box.x1, box.y1)]
        lines.append(f"phantom.nrrd,{organ},{key},{key - 1} {key + 1},{organ.replace(' ', '_')}.seg.nrrd")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return folder / "manifest.csv", boxes


def answer_from_the_request(boxes: dict[str, list[int]]):
    """The model's answer read from the request alone (the box around the target it names,
    then stop), never from the order of the requests: two actors asking at once may
    interleave their turns in any order."""
    from MedSAMAgentLib.agent.protocol import tool_call_text

    def answer(request: dict) -> dict:
        question = " ".join(part.get("text", "") for part in request["messages"][1]["content"])
        target = re.search(r"The target to be segmented is: (.+?)\.\n", question).group(1)
        if any(message["role"] == "assistant" for message in request["messages"]):
            return {"content": tool_call_text("stop_action", {})}
        return {"content": tool_call_text("add_bbox", {"bbox_2d": boxes[target]})}

    return answer


def test_two_actors_sharing_one_endpoint_write_what_a_local_worker_writes(kidney_rows, ray_cluster, tmp_path):
    from Testing.fixtures.chat_server import ScriptedChatServer

    manifest, boxes = kidney_rows
    turns = 4  # two rows of two turns each: the box, then stop
    outputs = {}
    for where, options in (("local", ["--workers", "1"]), ("ray", RAY_OPTIONS)):
        with ScriptedChatServer([answer_from_the_request(boxes)] * turns) as endpoint:
            policy = ["--policy", "endpoint", "--endpoint", endpoint.url, "--agent-model", "medsam-agent"]
            assert cli.main(["batch", str(manifest), "-o", str(tmp_path / where), *options, *policy]) == 0
        assert len(endpoint.requests) == turns, f"{where}: every turn of both rows asked the endpoint once"
        assert {request["model"] for request in endpoint.requests} == {"medsam-agent"}, where
        outputs[where] = tmp_path / where
    results = read_results(outputs["ray"])
    assert [line["status"] for line in results.values()] == ["done", "done"]
    assert len({line["worker"] for line in results.values()}) == 2, "one row on each actor"
    for name in results:
        assert_same_volume(outputs["local"] / name, outputs["ray"] / name, "the local worker's")
    assert records_without_times(outputs["ray"]) == records_without_times(outputs["local"])
