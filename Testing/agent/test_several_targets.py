"""Several targets in one run, with the simulated clinician on real anatomy (the CT head
atlas as a DICOM series): one segment per target in a DICOM SEG, a Dice floor per target,
and a target that fails reported by name while the others are written. Floors are set a
few points under the values measured on this machine."""

from __future__ import annotations

import highdicom
import numpy as np
import pytest
import SimpleITK as sitk

from MedSAMAgentLib import cli, segmenters
from MedSAMAgentLib.cli.targets import EXIT_SOME_TARGETS_FAILED
from MedSAMAgentLib.io.volumes import read_volume
from MedSAMAgentLib.metrics import dice
from MedSAMAgentLib.orientation import SlicePlane
from Testing.engine.test_dicom_seg import seg_masks_by_highdicom
from Testing.fixtures.dicom_series import anatomy_series

# Measured (LiteMedSAM, box then clicks; the midline is faint on CT): 0.757 and 0.742 on
# an AMD EPYC in bf16, 0.693 and 0.754 on a Xeon with AMX in bf16 (the right hemisphere's
# masks cross the midline on its last six slices), 0.732 and 0.737 in PyTorch f32.
FLOORS = {"right cerebral hemisphere": 0.68, "left cerebral hemisphere": 0.71}
STEP = (3, 3, 6)  # 3 mm pixels, 6 mm slices: about 17 slices of brain per target


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """The series, and a label map of the two hemispheres (label 1 right, 2 left) on its grid."""
    folder = tmp_path_factory.mktemp("head")
    anatomy_series(folder / "series", step=STEP)
    volume = read_volume(folder / "series", log=lambda _: None)
    _, _, brain = anatomy_series(folder / "unused", step=STEP)
    k, j, i = np.nonzero(brain)
    points = (volume.geometry.ijk_to_lps() @ np.stack([i, j, k, np.ones_like(i)]).astype(float))[:3]
    midline = np.median(points[0])
    labels = np.zeros(brain.shape, np.uint8)
    labels[k, j, i] = np.where(points[0] < midline, 1, 2)  # LPS: x grows to the patient's left
    path = folder / "hemispheres.nii.gz"
    sitk.WriteImage(volume.geometry.apply_to(sitk.GetImageFromArray(labels)), str(path))
    key = int(np.argmax(SlicePlane.for_view(volume.geometry, "axial").to_display(brain).sum(axis=(1, 2))))
    return folder / "series", volume, path, labels, key


def test_each_target_gets_its_segment_and_a_failing_one_leaves_the_others(tmp_path, head, litemedsam, monkeypatch, capsys):
    monkeypatch.setattr(segmenters, "create_segmenter", lambda *a, **k: litemedsam)
    series, volume, truth_path, labels, key = head
    output = tmp_path / "hemispheres.dcm"
    status = cli.main([
        "segment", str(series), "-o", str(output), "--slice", str(key), "--window", "brain",
        "--target", "right cerebral hemisphere; left cerebral hemisphere", "--target", "spleen",
        "--policy", "clinician", "--gt", str(truth_path),
    ])
    err = capsys.readouterr().err
    assert status == EXIT_SOME_TARGETS_FAILED, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: target 'spleen' failed: the agent found no 'spleen' on slice {key}")
    seg = highdicom.seg.segread(str(output))
    assert [item.SegmentLabel for item in seg.SegmentSequence] == list(FLOORS)
    masks = seg_masks_by_highdicom(output, volume.geometry)
    scores = {name: dice(mask, labels == number) for number, (name, mask) in enumerate(zip(FLOORS, masks), 1)}
    print("Dice per target:", {name: round(score, 3) for name, score in scores.items()})
    for name, score in scores.items():
        assert score >= FLOORS[name], f"{name}: Dice {score:.3f}"


def test_several_targets_refuse_what_names_a_single_segment(tmp_path, head, capsys):
    series, _, truth_path, _, key = head
    base = ["segment", str(series), "--slice", str(key), "--target", "liver; spleen", "--policy", "clinician"]
    existing = tmp_path / "organs.labels.tsv"
    existing.write_text("earlier")
    cases = [
        (["-o", str(tmp_path / "a.seg.nrrd"), "--gt", str(truth_path), "--name", "Organs"], "--name names one segment"),
        (["-o", str(tmp_path / "a.seg.nrrd"), "--gt", str(truth_path), "--target", "Liver"], "target 'Liver' is given twice"),
        (["-o", str(tmp_path / "a.seg.nrrd"), "--gt", str(truth_path), "--gt", str(truth_path), "--gt", str(truth_path)],
         "give one --gt per target (2)"),
        (["-o", str(tmp_path / "organs.nii.gz"), "--gt", str(truth_path)], "organs.labels.tsv exists; pass --overwrite"),
    ]
    for extra, message in cases:
        assert cli.main(base + extra) == cli.EXIT_USER_ERROR
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["organs.labels.tsv"] and existing.read_text() == "earlier"
