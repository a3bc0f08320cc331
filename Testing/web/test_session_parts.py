"""The parts of a browser session that need no browser: what an upload opens and how long
its files are kept, how the page describes placed points, and the agent options."""

from __future__ import annotations

import io
import zipfile

import pytest

from MedSAMAgentLib import cli
from MedSAMAgentLib.errors import InputImageError
from MedSAMAgentLib.web.save_actions import zipped
from MedSAMAgentLib.web.session_actions import points_text
from MedSAMAgentLib.web.uploads import DICOM_UPLOAD_NAME, UploadFolder


def test_an_upload_opens_its_volume_file_else_the_folder_as_a_dicom_series():
    uploads = UploadFolder()
    with uploads.receive([("ct.raw", b"data"), ("ct.nhdr", b"header")]) as (path, name):
        assert (path.name, name) == ("ct.nhdr", "ct.nhdr") and (path.parent / "ct.raw").read_bytes() == b"data"
    with uploads.receive([("IM0001", b"a"), ("IM0002.dcm", b"b")]) as (path, name):
        assert name == DICOM_UPLOAD_NAME and sorted(child.name for child in path.iterdir()) == ["IM0001", "IM0002.dcm"]


def test_an_upload_that_fails_to_open_leaves_the_open_volumes_files_in_place():
    """A DICOM SEG re-reads the series it references: the open volume's files stay until
    another upload opens."""
    uploads = UploadFolder()
    with uploads.receive([("IM0001.dcm", b"a")]) as (series, _):
        pass
    with pytest.raises(InputImageError), uploads.receive([("bad.nii.gz", b"x")]) as (refused, _):
        raise InputImageError("truncated")
    assert series.is_dir() and not refused.parent.exists()
    with uploads.receive([("ct.nrrd", b"y")]) as (opened, _):
        pass
    assert not series.exists() and opened.exists()


def test_points_are_described_by_kind_and_slice():
    points = [((0.0, 0.0, 0.0), True), ((1.0, 0.0, 0.0), True), ((2.0, 0.0, 0.0), False)]
    assert points_text(points, [17, 15, 17]) == "2 positive (slices 15, 17), 1 negative (slice 17)"
    assert points_text(points[:1], [3]) == "1 positive (slice 3)"
    assert points_text([], []) == ""


def test_the_endpoint_policy_needs_an_endpoint(capsys):
    assert cli.main(["web", "--policy", "endpoint"]) == cli.EXIT_USER_ERROR
    assert "--endpoint URL" in capsys.readouterr().err


def test_a_saved_folder_downloads_as_a_zip_of_its_files(tmp_path):
    record = tmp_path / "medsam-agent-right-kidney-20261206-101010"
    (record / "key_slice_17").mkdir(parents=True)
    (record / "trajectory.json").write_text("{}")
    (record / "key_slice_17" / "turn01.png").write_bytes(b"png")
    with zipfile.ZipFile(io.BytesIO(zipped(record))) as archive:
        assert sorted(archive.namelist()) == [f"{record.name}/key_slice_17/turn01.png", f"{record.name}/trajectory.json"]
        assert archive.read(f"{record.name}/key_slice_17/turn01.png") == b"png"
