"""A manifest row means what the same options mean to `segment`: its columns become
`segment`'s options, parsed by `segment`'s own parser (no model runs here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from MedSAMAgentLib import cli
from MedSAMAgentLib.cli.batch import shared_options
from MedSAMAgentLib.cli.cohort.manifest import ManifestRow, output_name, segment_arguments
from MedSAMAgentLib.errors import PromptError

FOLDER = Path("/data/cohort")


def row_arguments(values: dict[str, str], *batch_options: str):
    options = cli.build_parser().parse_args(["batch", "manifest.csv", "-o", "out", *batch_options])
    row = ManifestRow(1, values, FOLDER)
    return segment_arguments(row, Path("/out") / output_name(row), Path("/out/records/x"), options, shared_options())


def test_a_box_row_is_segments_options_and_the_batch_gives_the_models():
    args = row_arguments({"image": "ct/case1.nii.gz", "slice": "12", "box": "1 2 30 40", "points": "5 6 pos; 7 8 neg",
                          "range": "10 14", "axis": "coronal", "window": "lung"}, "--segmenter", "medsam2", "--runtime", "torch")
    reference = cli.build_parser().parse_args(
        ["segment", "/data/cohort/ct/case1.nii.gz", "-o", "/out/case1.seg.nrrd", "--slice", "12", "--axis", "coronal", "--window",
         "lung", "--range", "10", "14", "--box", "1", "2", "30", "40", "--point", "5", "6", "pos", "--point", "7", "8", "neg",
         "--segmenter", "medsam2", "--runtime", "torch"])
    assert vars(args) == {name: value for name, value in vars(reference).items() if name != "debug"}  # --debug is the command's


def test_a_target_row_gets_the_agents_options_its_record_folder_and_the_rows_segmenter_wins():
    args = row_arguments({"image": "/scans/a.nrrd", "description": "liver; spleen", "segmenter": "litemedsam"},
                         "--segmenter", "medsam2", "--policy", "endpoint", "--endpoint", "http://vllm:8000/v1", "--find-slice")
    assert (args.target, args.segmenter, args.policy, args.endpoint) == (["liver; spleen"], "litemedsam", "endpoint", "http://vllm:8000/v1")
    assert args.find_slice and args.save_trajectory == Path("/out/records/x") and args.output == Path("/out/a.seg.nrrd")


def test_a_box_row_does_not_get_the_agents_options():
    args = row_arguments({"image": "a.nrrd", "slice": "3", "box": "1 1 9 9", "output": "sub/a.nii.gz"}, "--policy", "clinician")
    assert (args.policy, args.target, args.save_trajectory, args.output) == (None, None, None, Path("/out/sub/a.nii.gz"))


@pytest.mark.parametrize(("values", "reason"), [
    ({"image": "a.nrrd", "slice": "three", "box": "1 1 9 9"}, "invalid int value: 'three'"),
    ({"image": "a.nrrd", "slice": "3", "box": "1 1 9"}, "expected 4 arguments"),
    ({"image": "a.nrrd", "target": "liver", "description": "liver"}, "one column, target or description"),
    ({"slice": "3", "box": "1 1 9 9"}, "the image column is empty"),
])
def test_a_row_that_segment_would_refuse_is_refused_with_segments_reason(values, reason):
    with pytest.raises(PromptError, match=reason):
        row_arguments(values)
