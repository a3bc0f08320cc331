"""Everything that can refuse a run is checked before any model runs, on every path: the
command line (no model package is even imported), a server job (refused at submission,
before the volume is sent), the Slicer module (refused in the main thread, the scene
untouched, in `Testing/module`). Each refusal is one line and writes nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from MedSAMAgentLib.errors import OutputError
from Testing.fixtures.server import environment, run_medsam_agent
from Testing.service.conftest import offline

CLI_REPORTING_MODULES = (
    "import sys; from MedSAMAgentLib.cli import main; status = main(sys.argv[1:]); "
    "print('model packages loaded:', sorted(name for name in ('torch', 'openvino', 'transformers', 'sam2') if name in sys.modules), "
    "file=sys.stderr); sys.exit(status)"
)


def refused(*arguments: str, **extra_environment: str) -> tuple[list[str], str]:
    """Run the command; return its 'error:' lines and the model packages it imported."""
    done = subprocess.run([sys.executable, "-c", CLI_REPORTING_MODULES, *arguments], capture_output=True, encoding="utf-8",
                          env=environment(**extra_environment), timeout=300)
    assert done.returncode == 2, done.stderr
    return [line for line in done.stderr.splitlines() if line.startswith("error:")], done.stderr.splitlines()[-1]


def files_in(folder) -> dict:
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*")}


def series_without_frame_of_reference(folder):
    from Testing.fixtures.dicom_series import write_volume_series

    array = np.zeros((6, 40, 40), np.int16)
    array[1:5, 10:30, 12:28] = 300
    writer = write_volume_series(folder, array, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    for path in writer.paths:
        dataset = pydicom.dcmread(path)
        del dataset.FrameOfReferenceUID
        dataset.save_as(path)
    return folder


def test_a_seg_for_a_series_without_a_frame_of_reference_is_refused_before_any_model(tmp_path):
    series = series_without_frame_of_reference(tmp_path / "series")
    before = files_in(tmp_path)
    errors, loaded = refused("segment", str(series), "-o", str(tmp_path / "out.dcm"), "--slice", "3", "--box", "12", "10", "27", "29")
    assert errors == ["error: out.dcm: the source series has no Frame of Reference UID, which a DICOM SEG must share with it; "
                      "write the same result as .seg.nrrd or .nii.gz instead (it lies on the same voxel grid)"]
    assert loaded == "model packages loaded: []"
    assert files_in(tmp_path) == before


def test_missing_weights_are_refused_before_the_volume_is_segmented(tmp_path):
    volume = tmp_path / "ct.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(6 * 32 * 32, dtype=np.int16).reshape(6, 32, 32)), str(volume))
    before = files_in(tmp_path)
    errors, loaded = refused("segment", str(volume), "-o", str(tmp_path / "out.seg.nrrd"), "--slice", "2", "--box", "4", "4", "20", "20",
                             "--segmenter", "medsam2", **offline(tmp_path / "home"))
    assert len(errors) == 1 and "MedSAM2_latest.pt from wanglab/MedSAM2 is not on this machine" in errors[0]
    assert loaded == "model packages loaded: []"
    errors, loaded = refused("segment", str(volume), "-o", str(tmp_path / "out.seg.nrrd"), "--target", "liver", "--slice", "2",
                             "--device", "cpu", **offline(tmp_path / "home"))
    assert len(errors) == 1 and "the model Saint-lsy/MedSAM-Agent-Qwen3-VL-8B-MedSAM2 is not on this machine" in errors[0]
    assert "medsam-agent models fetch agent --to DIR" in errors[0] and "--agent-model" in errors[0]
    assert loaded == "model packages loaded: []"
    assert files_in(tmp_path) == before


def test_an_output_folder_without_the_space_for_the_result_is_refused(tmp_path):
    from MedSAMAgentLib.io.volumes import Geometry
    from MedSAMAgentLib.io.writers import check_free_space

    def cube(side: int) -> Geometry:
        return Geometry(size=(side, side, side), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()))

    free = shutil.disk_usage(tmp_path).free
    too_large = cube(int((2 * free) ** (1 / 3)) + 1)  # its raw label map needs twice the free space
    with pytest.raises(OutputError, match=rf"cannot write {tmp_path}/result.nii: its folder has .* MB free and the result needs about"):
        check_free_space(tmp_path / "result.nii", too_large)
    check_free_space(tmp_path / "result.seg.nrrd", cube(64))


def kidney_arguments(tmp_path, phantom) -> list[str]:
    """The phantom written as a file, and a box around its right kidney on its largest slice."""
    volume, organs = phantom
    path = tmp_path / "phantom.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(volume.array), str(path))
    kidney = organs["right kidney"]
    key = int(np.argmax(kidney.sum(axis=(1, 2))))
    rows, columns = np.nonzero(kidney[key])
    box = [columns.min() - 3, rows.min() - 3, columns.max() + 3, rows.max() + 3]
    return [str(path), "--slice", str(key), "--box", *map(str, box), "--range", str(key - 1), str(key + 1)]


def test_a_refused_key_stops_the_run_before_the_volume_is_sent(tmp_path, server, phantom):
    uploads = server.uploads()
    done = run_medsam_agent("segment", *kidney_arguments(tmp_path, phantom), "-o", str(tmp_path / "out.seg.nrrd"), "--server", server.url,
                            MEDSAM_AGENT_SERVER_KEY="wrong")
    assert done.returncode == 2
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        f"error: the server at {server.url} refused the API key: check $MEDSAM_AGENT_SERVER_KEY"]
    assert server.uploads() == uploads and not (tmp_path / "out.seg.nrrd").exists()


def test_hardware_options_are_ignored_with_one_note_on_a_server(tmp_path, server, keys, phantom):
    done = run_medsam_agent("segment", *kidney_arguments(tmp_path, phantom), "-o", str(tmp_path / "out.seg.nrrd"), "--server", server.url,
                            "--device", "cpu", "--runtime", "torch", MEDSAM_AGENT_SERVER_KEY=keys[1]["alice"])
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    assert notes == ["note: --device and --runtime choose this computer's hardware; with --server they are ignored "
                     "(the server chose its own)"]
    assert (tmp_path / "out.seg.nrrd").is_file()
