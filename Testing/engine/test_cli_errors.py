"""Every bad input to `medsam-agent segment`: one clear line, a non-zero exit, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from MedSAMAgentLib import cli
from Testing.fixtures.volumes import DIRECTIONS, synthetic_image


@pytest.fixture
def volume_path(tmp_path):
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(synthetic_image(DIRECTIONS["identity"]), str(path))  # 40 x 36 x 24
    return path


def write_image(path, array, **kwargs):
    sitk.WriteImage(sitk.GetImageFromArray(array, **kwargs), str(path))
    return path


def write_4d(path):
    import nibabel

    nibabel.save(nibabel.Nifti1Image(np.arange(120, dtype=np.int16).reshape(5, 4, 3, 2), np.eye(4)), str(path))
    return path


def corrupt(tmp_path):
    path = tmp_path / "corrupt.nii.gz"
    path.write_bytes(b"\x1f\x8bnot an image")
    return path


def wrong_checkpoint(tmp_path):
    path = tmp_path / "wrong.pt"
    torch.save({"model": {"not.a.litemedsam.key": torch.zeros(1)}}, path)
    return path


def garbage_checkpoint(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a torch file")
    return path


def nifti_as_checkpoint(tmp_path):
    path = tmp_path / "ct.nii"
    sitk.WriteImage(synthetic_image(DIRECTIONS["identity"]), str(path))
    return path


def litemedsam_checkpoint(tmp_path):
    from MedSAMAgentLib.segmenters.litemedsam import bundled_checkpoint

    return bundled_checkpoint()


def medsam2_checkpoint(tmp_path):
    from MedSAMAgentLib.segmenters.medsam2 import build_model

    path = tmp_path / "medsam2.pt"
    torch.save({"model": build_model().state_dict()}, path)
    return path


def truncated(tmp_path, name, compress=False):
    """A real volume file cut short (ITK would read it with zeros for the missing voxels)."""
    path = tmp_path / name
    sitk.WriteImage(synthetic_image(DIRECTIONS["identity"]), str(path), useCompression=compress)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def dicom_with_two_orientations(tmp_path):
    from Testing.engine.test_dicom_input import AXIAL, axial_positions, write_scene

    sagittal = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    write_scene(tmp_path / "dicom", axial_positions(np.arange(6) * 2.0) + [np.array([5.0, -6.0, 20.0])], [AXIAL] * 6 + [sagittal])
    return tmp_path / "dicom"


BOX = ["--box", "2", "2", "20", "20"]


def ras(i: float, j: float, k: float) -> list[str]:
    """RAS mm of a voxel index of the test volume (identity direction, see synthetic_image)."""
    lps = synthetic_image(DIRECTIONS["identity"]).TransformContinuousIndexToPhysicalPoint((i, j, k))
    return [str(-lps[0]), str(-lps[1]), str(lps[2])]


# Prompts on further slices and 3D boxes: each refused before any model loads (the run
# also names a checkpoint that does not exist, which loading a model would report first).
NO_MODEL = ["--checkpoint", "never-loaded.pt"]
SEED_CASES = {
    "box-at slice outside": ([*BOX, "--slice", "3", "--box-at", "30", *BOX[1:]], "the prompt on slice 30 is outside the volume"),
    "box-at outside the slice": (["--box-at", "5", "2", "2", "40", "20"], "lies outside the slice"),
    "box-at inverted": (["--box-at", "5", "20", "2", "5", "20"], "is inverted"),
    "point-at outside the slice": (["--box-at", "5", *BOX[1:], "--point-at", "5", "3", "50", "neg"], "lies outside the slice"),
    "point-at bad word": (["--point-at", "5", "3", "3", "maybe"], "point type must be pos or neg, got 'maybe'"),
    "point-at slice not a number": (["--point-at", "five", "3", "3", "pos"], "expected a slice number, got 'five'"),
    "seed outside the range": ([*BOX, "--slice", "3", "--point-at", "10", "3", "3", "pos", "--range", "2", "6"],
                               "the prompt on slice 10 is outside the range 2 6"),
    "nothing on the key slice": (["--slice", "3", "--box-at", "5", *BOX[1:]], "no prompt given on the key slice 3"),
    "3D box and another range": (["--box-ras", *ras(2, 2, 4), *ras(20, 20, 10), "--range", "2", "12"],
                                 "--box-ras spans slices 4 to 10, which differs from the range 2 12"),
    "key slice outside the 3D box": (["--slice", "20", "--box-ras", *ras(2, 2, 4), *ras(20, 20, 10)],
                                     "the key slice 20 is outside the range 4 10"),
    "3D box beyond the volume": (["--box-ras", *ras(2, 2, 4), *ras(20, 20, 30)], "the box spans axial slices 4 to 30, beyond the volume"),
    "box-ras-at across slices": (["--box-ras-at", *ras(2, 2, 4), *ras(20, 20, 10)], "spans axial slices 4 to 10: a box on one slice"),
    "two 3D boxes": (["--box-ras", *ras(2, 2, 4), *ras(20, 20, 10), "--box-ras", *ras(2, 2, 5), *ras(20, 20, 9)],
                     "give the object's ends once"),
    "agent and prompts": (["--target", "liver", "--slice", "3", "--box-at", "5", *BOX[1:]], "give either --target"),
}
CASES = {
    "missing file": (lambda t, v: [str(t / "absent.nii.gz"), "--slice", "3", *BOX], "input not found"),
    "corrupt file": (lambda t, v: [str(corrupt(t)), "--slice", "3", *BOX], "the file is corrupt"),
    "2D image": (lambda t, v: [str(write_image(t / "2d.nrrd", np.arange(400, dtype=np.int16).reshape(20, 20))), "--slice", "0", *BOX], "is a 2D image"),
    "4D image": (lambda t, v: [str(write_4d(t / "4d.nii.gz")), "--slice", "0", *BOX], "is a 4D image"),
    "empty volume": (lambda t, v: [str(write_image(t / "zeros.nrrd", np.zeros((4, 5, 6), np.int16))), "--slice", "0", *BOX], "is empty"),
    "slice out of range": (lambda t, v: [str(v), "--slice", "24", *BOX], "slice 24 is outside the volume"),
    "negative slice": (lambda t, v: [str(v), "--slice", "-1", *BOX], "slice -1 is outside the volume"),
    "box outside the slice": (lambda t, v: [str(v), "--slice", "3", "--box", "2", "2", "40", "20"], "lies outside the slice"),
    "zero-area box": (lambda t, v: [str(v), "--slice", "3", "--box", "5", "2", "5", "20"], "has zero area"),
    "inverted box": (lambda t, v: [str(v), "--slice", "3", "--box", "20", "2", "5", "20"], "is inverted"),
    "point outside": (lambda t, v: [str(v), "--slice", "3", "--point", "50", "3", "pos"], "lies outside the slice"),
    "bad point type": (lambda t, v: [str(v), "--slice", "3", "--point", "5", "3", "maybe"], "point type must be pos or neg"),
    "no prompt": (lambda t, v: [str(v), "--slice", "3"], "no prompt given"),
    "no slice": (lambda t, v: [str(v), *BOX], "give the key slice"),
    "unknown preset": (lambda t, v: [str(v), "--slice", "3", *BOX, "--window", "liverish"], "unknown window 'liverish'"),
    "zero window width": (lambda t, v: [str(v), "--slice", "3", *BOX, "--window", "0/40"], "window width must be positive"),
    "missing checkpoint": (lambda t, v: [str(v), "--slice", "3", *BOX, "--checkpoint", str(t / "none.pt")], "checkpoint not found"),
    "missing medsam2 checkpoint": (lambda t, v: [str(v), "--slice", "3", *BOX, "--segmenter", "medsam2", "--checkpoint", str(t / "none.pt")], "checkpoint not found"),
    "checkpoint keys do not match": (lambda t, v: [str(v), "--slice", "3", *BOX, "--checkpoint", str(wrong_checkpoint(t))], "is not a LiteMedSAM checkpoint: keys do not match"),
    "garbage checkpoint": (lambda t, v: [str(v), "--slice", "3", *BOX, "--checkpoint", str(garbage_checkpoint(t))],
                           ("garbage.pt is not a PyTorch checkpoint: it is a text file (it starts with 'this is not a torch file'); "
                            "expected LiteMedSAM weights")),
    "image as checkpoint": (lambda t, v: [str(v), "--slice", "3", *BOX, "--checkpoint", str(nifti_as_checkpoint(t))],
                            "ct.nii is not a PyTorch checkpoint: it is a NIfTI image; expected LiteMedSAM weights"),
    "checkpoint of another model": (lambda t, v: [str(v), "--slice", "3", *BOX, "--checkpoint", str(medsam2_checkpoint(t))],
                                    ("medsam2.pt holds SAM 2 / MedSAM2 (Hiera-tiny) weights; LiteMedSAM needs LiteMedSAM / MobileSAM "
                                     "(TinyViT encoder) weights")),
    "litemedsam checkpoint for medsam2": (lambda t, v: [str(v), "--slice", "3", *BOX, "--segmenter", "medsam2", "--checkpoint",
                                                        str(litemedsam_checkpoint(t))],
                                          ("lite_medsam.pth holds LiteMedSAM / MobileSAM (TinyViT encoder) weights; MedSAM2 needs "
                                           "SAM 2 / MedSAM2 (Hiera-tiny) weights")),
    "truncated .nii.gz": (lambda t, v: [str(truncated(t, "ct.nii.gz", True)), "--slice", "3", *BOX], "ct.nii.gz is truncated or damaged"),
    "truncated .nii": (lambda t, v: [str(truncated(t, "ct.nii")), "--slice", "3", *BOX], "ct.nii is truncated: its header declares"),
    "truncated .mha": (lambda t, v: [str(truncated(t, "ct.mha")), "--slice", "3", *BOX], "ct.mha is truncated: its header declares"),
    "truncated .nrrd": (lambda t, v: [str(truncated(t, "ct.nrrd", True)), "--slice", "3", *BOX], "ct.nrrd is truncated"),
    "DICOM series mixing orientations": (lambda t, v: [str(dicom_with_two_orientations(t)), "--slice", "3", *BOX],
                                         "mixes slice orientations (6 with orientation (1, 0, 0, 0, 1, 0); 1 with orientation"),
    "SEG for a file input": (lambda t, v: [str(v), "--slice", "3", *BOX, "-o", str(t / "out.dcm")],
                             "out.dcm: a DICOM SEG (.dcm) references the DICOM series it segments, and the input ct.nrrd is not DICOM"),
    "range outside": (lambda t, v: [str(v), "--slice", "3", *BOX, "--range", "0", "30"], "range 0 30 is outside the volume"),
    "unsupported output": (lambda t, v: [str(v), "--slice", "3", *BOX, "-o", str(t / "out.png")], "unsupported output type"),
    "turn size with a server": (lambda t, v: [str(v), "--slice", "3", *BOX, "--agent-turns-px", "512", "--server", "http://127.0.0.1:9"],
                                "--agent-turns-px choose models on this computer; with --server the server's models are used"),
    "output is the input": (lambda t, v: [str(v), "--slice", "3", *BOX, "-o", str(v), "--overwrite"], "is (or is inside) the input"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_line_and_writes_nothing(tmp_path, volume_path, capsys, case):
    build, message = CASES[case]
    arguments = build(tmp_path, volume_path)
    if "-o" not in arguments:
        arguments += ["-o", str(tmp_path / "result.seg.nrrd")]
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    status = cli.main(["segment", *arguments])
    captured = capsys.readouterr()
    assert status == cli.EXIT_USER_ERROR
    error_lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and message in error_lines[0], captured.err
    assert "Traceback" not in captured.err
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before  # nothing written, nothing touched


@pytest.mark.parametrize("where", ["here", "server"])
@pytest.mark.parametrize("case", list(SEED_CASES))
def test_bad_seeds_are_refused_before_any_model_loads_or_server_is_reached(tmp_path, volume_path, capsys, case, where):
    """Locally a model is never loaded (its checkpoint does not exist); with --server the
    same line comes before the client contacts the server (nothing listens at its URL)."""
    from Testing.fixtures.server import free_port

    arguments, message = SEED_CASES[case]
    elsewhere = NO_MODEL if where == "here" else ["--server", f"http://127.0.0.1:{free_port()}"]
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    status = cli.main(["segment", str(volume_path), "-o", str(tmp_path / "result.seg.nrrd"), *arguments, *elsewhere])
    captured = capsys.readouterr()
    assert status == cli.EXIT_USER_ERROR
    error_lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and message in error_lines[0], captured.err
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


def test_existing_output_is_not_replaced_without_overwrite(tmp_path, volume_path, capsys):
    output = tmp_path / "result.nii.gz"
    output.write_bytes(b"earlier work")
    status = cli.main(["segment", str(volume_path), "-o", str(output), "--slice", "3", *BOX])
    assert status == cli.EXIT_USER_ERROR
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert output.read_bytes() == b"earlier work"
