"""The main job on the embedded default: `medsam-agent demo`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from MedSAMAgentLib import cli
from MedSAMAgentLib.metrics import dice
from MedSAMAgentLib.phantom import abdominal_phantom


def test_demo_writes_volume_segmentation_and_montage(tmp_path, capsys):
    assert cli.main(["demo", "-o", str(tmp_path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    score = float(re.search(r"Dice against the phantom's truth (\d\.\d+)", out).group(1))
    assert score >= 0.95  # 0.955 measured (OpenVINO bf16, default tracking rules)
    volume = sitk.ReadImage(str(tmp_path / "sample_abdomen_ct.nrrd"))
    segmentation = sitk.ReadImage(str(tmp_path / "right_kidney.seg.nrrd"))
    assert segmentation.GetSize() == volume.GetSize() and segmentation.GetSpacing() == volume.GetSpacing()
    assert segmentation.GetMetaData("Segment0_Name") == "right kidney"
    sample, organs = abdominal_phantom()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(volume), sample.array)
    labels = sitk.GetArrayFromImage(segmentation) > 0
    assert abs(dice(labels, organs["right kidney"]) - score) < 1e-3  # the file holds what was reported
    found = np.flatnonzero(labels.any(axis=(1, 2)))
    present = np.flatnonzero(organs["right kidney"].any(axis=(1, 2)))
    assert present[0] - 1 <= found[0] and found[-1] <= present[-1] + 1  # propagation stopped at the kidney's ends
    pixels = np.asarray(Image.open(tmp_path / "right_kidney_montage.png").convert("RGB")).astype(int)
    assert pixels.shape[1] == 4 * 192 and pixels.shape[0] % 160 == 0
    assert ((pixels[..., 1] - pixels[..., 0]) > 60).sum() > 500  # the green overlay is drawn

    before = (tmp_path / "right_kidney.seg.nrrd").read_bytes()
    assert cli.main(["demo", "-o", str(tmp_path)]) == cli.EXIT_USER_ERROR  # earlier results are kept
    assert (tmp_path / "right_kidney.seg.nrrd").read_bytes() == before


def test_console_script_is_installed():
    executable = str(Path(sys.executable).parent / "medsam-agent")
    completed = subprocess.run([executable, "segment", "--help"], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0
    for option in ("--slice", "--box", "--box-ras", "--point", "--range", "--window", "--segmenter", "--checkpoint", "--overwrite"):
        assert option in completed.stdout
