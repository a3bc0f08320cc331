"""The module's settings, as the widget's parameter node holds them, turned into the job a
click on Segment, Propagate or Re-run starts; with slice views and markups in a real scene."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from MedSAMAgentLib.errors import PromptError
from MedSAMAgentLib.orientation import SlicePlane
from MedSAMAgentLogic import parameters, selftest
from MedSAMAgentLogic.edits import LastResult
from MedSAMAgentLogic.segment_writer import segment_array
from MedSAMAgentLogic.selftest import ANATOMICAL_NORMALS, roi_around, set_slice_view, voxel_centre_ras
from MedSAMAgentLogic.volume_nodes import geometry_of

MODULE_SOURCE = Path(__file__).resolve().parents[2] / "MedSAMAgent" / "MedSAMAgent.py"


def default_parameters(**values) -> SimpleNamespace:
    """The fields of `MedSAMAgentParameterNode` with their declared defaults (node fields:
    None), read from the module's source so that the test follows the real declaration."""
    tree = ast.parse(MODULE_SOURCE.read_text())
    wrapper = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "MedSAMAgentParameterNode")
    fields = {}
    for statement in wrapper.body:
        if not isinstance(statement, ast.AnnAssign):
            continue
        value = statement.value
        if value is None:
            fields[statement.target.id] = None
        elif isinstance(value, ast.Name):
            fields[statement.target.id] = getattr(parameters, value.id)
        else:
            fields[statement.target.id] = ast.literal_eval(value)
    unknown = set(values) - set(fields)
    assert not unknown, f"not parameters of the module: {unknown}"
    return SimpleNamespace(**{**fields, **values})


@pytest.fixture
def key_view(scene, phantom_node):
    """The Red view set on the phantom kidney's largest axial slice; returns that slice."""
    node, kidney = phantom_node
    plane = SlicePlane.for_view(geometry_of(node), "axial")
    key = int(np.argmax(plane.to_display(kidney).sum(axis=(1, 2))))
    set_slice_view(scene, "Red", ANATOMICAL_NORMALS["axial"], voxel_centre_ras(geometry_of(node), plane, key))
    return key


def test_the_defaults_run_the_local_agent_on_the_slice_the_view_shows(scene, phantom_node, key_view):
    node, _ = phantom_node
    key = key_view
    job = parameters.job_from_parameters(default_parameters(inputVolume=node, target="  right kidney "), scene, "", "segment")
    assert (job.target, job.segment_name, job.view, job.key_slice, job.find_slice) == ("right kidney", "right kidney", "axial", key, False)
    assert (job.policy, job.agent_model, job.segmenter, job.window, job.checkpoint, job.api_key) == (
        "qwen", "Saint-lsy/MedSAM-Agent-Qwen3-VL-8B-MedSAM2", "litemedsam", None, None, None)
    assert job.box_ras is None and job.points_ras == [] and job.recheck_every is None


def test_find_slice_leaves_the_key_slice_to_the_agent_and_endpoint_settings_pass_through(scene, phantom_node, key_view):
    node, _ = phantom_node
    settings = default_parameters(inputVolume=node, target="kidney", findSlice=True, agentSource=parameters.ENDPOINT,
                                  endpointUrl="http://localhost:9/v1", window="abdomen", recheck=5)
    job = parameters.job_from_parameters(settings, scene, "sk-test", "segment")
    assert (job.key_slice, job.find_slice, job.policy, job.endpoint_url, job.api_key, job.window, job.recheck_every) == (
        None, True, "endpoint", "http://localhost:9/v1", "sk-test", "abdomen", 5)


def test_running_on_a_server_passes_its_url_and_key_and_only_then(scene, phantom_node, key_view):
    node, _ = phantom_node
    on_server = default_parameters(inputVolume=node, target="kidney", runOn=parameters.A_SERVER, serverUrl=" https://seg.hospital:8765 ")
    job = parameters.job_from_parameters(on_server, scene, "", "segment", "server-key")
    assert (job.server_url, job.server_key, job.key_slice) == ("https://seg.hospital:8765", "server-key", key_view)
    assert "server-key" not in repr(job)
    here = parameters.job_from_parameters(default_parameters(inputVolume=node, target="kidney", serverUrl="https://x"), scene, "", "segment", "k")
    assert (here.server_url, here.server_key) == (None, None)


def test_propagate_and_rerun_use_neither_agent_nor_markups(scene, phantom_node, key_view):
    node, _ = phantom_node
    key = key_view
    roi = roi_around(scene, ((0.0, 0.0, 0.0), (10.0, 10.0, 0.0)))
    for mode in ("propagate", "rerun"):
        job = parameters.job_from_parameters(default_parameters(inputVolume=node, findSlice=True, promptBox=roi), scene, "", mode)
        assert (job.target, job.key_slice, job.find_slice, job.box_ras) == ("", key, False, None)


@pytest.mark.parametrize(("settings", "message"), [
    ({"inputVolume": None}, "select an input volume"),
    ({"target": "  "}, "type a target, or choose 'no agent"),
    ({"agentSource": parameters.NO_AGENT}, "place an ROI or points on the key slice"),
    ({"keySliceView": "Yellow"}, "there is no Yellow slice view"),
    ({"runOn": parameters.A_SERVER, "serverUrl": " "}, "type the MedSAM-Agent server's URL"),
])
def test_incomplete_settings_are_refused_with_what_to_do(scene, phantom_node, key_view, settings, message):
    node, _ = phantom_node
    with pytest.raises(PromptError, match=message):
        parameters.job_from_parameters(default_parameters(**{"inputVolume": node, **settings}), scene, "", "segment")


def test_prompts_placed_in_the_scene_segment_like_typed_corners(scene, logic, phantom_node):
    node, kidney = phantom_node
    selftest.check_manual_prompts_from_settings(scene, node, kidney, logic, default_parameters())


def placed_roi_job(scene, node, kidney, thickness_mm: float):
    """The job the module's settings give for an ROI around the kidney's box on its largest
    axial slice (shown in the Red view), `thickness_mm` thick across slices."""
    typed = selftest.prompt_job(node, kidney)
    geometry = geometry_of(node)
    plane = SlicePlane.for_view(geometry, "axial")
    set_slice_view(scene, "Red", ANATOMICAL_NORMALS["axial"], voxel_centre_ras(geometry, plane, typed.key_slice))
    roi = roi_around(scene, typed.box_ras, thickness_mm)
    job = parameters.job_from_parameters(default_parameters(inputVolume=node, agentSource=parameters.NO_AGENT, promptBox=roi), scene, "",
                                         "segment")
    job.device = "cpu"
    return job, plane


def written_slices(logic, scene, node, job, plane) -> tuple[list[int], LastResult]:
    segmentation = selftest.new_segmentation(scene, node)
    report = logic.process(node, segmentation, None, job)
    written = plane.to_display(segment_array(segmentation, report.segment_id, node))
    return np.flatnonzero(written.any(axis=(1, 2))).tolist(), logic.edits.last(segmentation.GetID(), report.segment_id)


def test_an_roi_across_slices_bounds_the_result_to_its_slices(scene, logic, phantom_node):
    node, kidney = phantom_node
    spacing = geometry_of(node).spacing[2]
    job, plane = placed_roi_job(scene, node, kidney, thickness_mm=4 * spacing)  # 2 slices each way
    key = job.key_slice
    job.slice_range = (key - 1, key + 1)
    with pytest.raises(PromptError, match=f"the ROI spans slices {key - 2} to {key + 2}, which differs from the range"):
        logic.process(node, selftest.new_segmentation(scene, node), None, job)
    job.slice_range = None
    slices, last = written_slices(logic, scene, node, job, plane)
    assert slices == list(range(key - 2, key + 3)) and last.slice_range == (key - 2, key + 2)


def test_a_flat_roi_leaves_the_ends_to_propagation(scene, logic, phantom_node):
    """An ROI one slice thick, as placed in a slice view: the kidney is followed to its ends
    (it spans axial slices 7 to 28), not beyond."""
    node, kidney = phantom_node
    job, plane = placed_roi_job(scene, node, kidney, thickness_mm=0.5 * geometry_of(node).spacing[2])
    assert job.slice_range is None
    slices, last = written_slices(logic, scene, node, job, plane)
    truth = np.flatnonzero(plane.to_display(kidney).any(axis=(1, 2)))
    assert last.slice_range is None and slices == list(range(slices[0], slices[-1] + 1))
    assert abs(slices[0] - truth[0]) <= 2 and abs(slices[-1] - truth[-1]) <= 2, (slices[0], slices[-1], truth[0], truth[-1])
