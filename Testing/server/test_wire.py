"""What crosses the wire: volumes named by their content, masks, requests and results,
decoded exactly or refused with a message."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from MedSAMAgentLib.agent.records import AgentRecord, TurnRecord
from MedSAMAgentLib.engine.interface import SegmentationOutcome
from MedSAMAgentLib.io.volumes import Volume, read_volume
from MedSAMAgentLib.remote import wire
from MedSAMAgentLib.server import schemas
from Testing.fixtures.anatomy import ct_head
from Testing.fixtures.server import kidney_request

LIMIT = 1 << 31


@pytest.fixture(scope="module")
def ct():
    return read_volume(ct_head()[0], log=lambda _: None)


def test_a_real_ct_round_trips_exactly_and_compresses(ct):
    digest, blob = wire.encode_volume(ct)
    back = wire.decode_volume(blob, digest, LIMIT)
    assert back.array.dtype == ct.array.dtype and np.array_equal(back.array, ct.array)
    assert back.geometry == ct.geometry and back.modality == ct.modality
    assert digest == wire.volume_digest(ct) == wire.volume_digest(back)
    assert len(blob) < ct.array.nbytes / 4, f"compressed to {len(blob)} of {ct.array.nbytes} bytes"


def test_the_digest_names_voxels_and_geometry_and_nothing_else(ct):
    digest = wire.volume_digest(ct)
    one_voxel = ct.array.copy()
    one_voxel[10, 20, 30] += 1
    moved = dataclasses.replace(ct.geometry, origin=(ct.geometry.origin[0] + 0.5, *ct.geometry.origin[1:]))
    big_endian = ct.array.astype(ct.array.dtype.newbyteorder(">"))
    assert wire.volume_digest(Volume(one_voxel, ct.geometry, ct.modality)) != digest
    assert wire.volume_digest(Volume(ct.array, moved, ct.modality)) != digest
    assert wire.volume_digest(Volume(big_endian, ct.geometry, ct.modality)) == digest
    renamed = Volume(ct.array, ct.geometry, ct.modality, description="Doe^Jane", source_path=None)
    assert wire.volume_digest(renamed) == digest
    _, blob = wire.encode_volume(renamed)
    assert b"Doe" not in blob and b"Jane" not in blob


def test_damaged_volume_blobs_are_refused_with_the_reason(ct):
    digest, blob = wire.encode_volume(ct)
    cases = {
        "truncated": (blob[: len(blob) // 2], digest, "truncated or damaged"),
        "header cut": (blob[:20], digest, "truncated"),
        "not a volume": (b"GIF89a" + blob[6:], digest, "wrong or missing magic"),
        "bytes flipped": (blob[:-64] + bytes(64), digest, "truncated or damaged"),
        "other digest": (blob, "0" * 64, "not 000000000000... as it was sent"),
    }
    for name, (data, expected, message) in cases.items():
        with pytest.raises((wire.CorruptDataError, wire.DigestMismatchError), match=message):
            wire.decode_volume(data, expected, LIMIT)
    with pytest.raises(wire.CorruptDataError, match="more than the 1000 this server accepts"):
        wire.decode_volume(blob, digest, 1000)


def test_a_request_round_trips(phantom):
    volume = phantom[0]
    request = kidney_request(phantom)
    mask = np.zeros(request.volume.array.shape[1:], bool)
    mask[10:30, 40:45] = True
    request.locked = {request.key_slice + 1: mask, request.key_slice - 1: np.zeros_like(mask)}
    request.window, request.segmenter, request.seeded_components_only = "400/40", "litemedsam", False
    body = wire.request_to_json(request, wire.volume_digest(volume))
    back = wire.request_from_json(body, volume)
    for field in ("view", "window", "key_slice", "target", "prompts", "slice_range", "seeded_components_only", "segmenter"):
        assert getattr(back, field) == getattr(request, field), field
    assert back.locked.keys() == request.locked.keys()
    assert all(np.array_equal(back.locked[index], request.locked[index]) for index in request.locked)


def test_prompts_on_further_slices_and_an_update_round_trip(phantom):
    from MedSAMAgentLib.prompts import Box, Point, SlicePrompts

    volume, organs = phantom
    previous = organs["right kidney"].copy()
    previous[3, 5, 7] = True  # a voxel no compression scheme guesses
    request = kidney_request(phantom, previous=previous, settled=(15, 19), prompts_at={
        22: SlicePrompts(box=Box(10.5, 20.0, 60.0, 70.25)),
        12: SlicePrompts(points=(Point(40.0, 41.5, True), Point(3.0, 4.0, False))),
    })
    body = wire.request_to_json(request, wire.volume_digest(volume))
    assert len(body["previous"]["bits"]) < previous.size / 100  # bit-packed and compressed, not a voxel list
    back = wire.request_from_json(schemas.JobRequest.model_validate(body).model_dump(), volume)
    assert back.prompts_at == request.prompts_at and back.settled == (15, 19) and back.prompts == request.prompts
    assert back.previous.dtype == bool and np.array_equal(back.previous, previous)
    other_grid = {**body, "previous": wire.encode_mask(previous[1:])}
    with pytest.raises(wire.CorruptDataError, match=re.escape(f"shape {list(previous[1:].shape)}, expected {list(previous.shape)}")):
        wire.request_from_json(other_grid, volume)


def test_a_result_carries_only_the_object_and_the_record(phantom):
    organs = phantom[1]
    picture = b"\x89PNG\r\n\x1a\n fake picture bytes"
    record = AgentRecord("key", 20, "right kidney", "stop_action", 1, 0, 321,
                         [TurnRecord(1, "<tool_call>...</tool_call>", {"kind": "box"}, {"box": [1.0, 2.0, 3.0, 4.0], "points": []},
                                     321, 0.9, 0.5, "", picture)])
    outcome = SegmentationOutcome(organs["right kidney"], "axial", 20, "abdomen 400/40", 1.5, [record], [3])
    blob = wire.encode_outcome(outcome)
    back = wire.decode_outcome(blob)
    assert np.array_equal(back.mask, outcome.mask)
    assert (back.view, back.key_slice, back.window, back.corrections) == ("axial", 20, "abdomen 400/40", [3])
    assert back.records == [record] and back.records[0].turns[0].picture_png == picture
    empty = wire.decode_outcome(wire.encode_outcome(dataclasses.replace(outcome, mask=np.zeros_like(outcome.mask))))
    assert not empty.mask.any() and empty.mask.shape == outcome.mask.shape
    header, _ = wire._unframe(blob, wire.RESULT_MAGIC, "result")
    kidney = np.argwhere(outcome.mask)
    assert header["crop"] == [[int(low), int(high)] for low, high in zip(kidney.min(axis=0), kidney.max(axis=0))]


def test_the_server_applies_the_input_rules_to_the_voxels_it_receives():
    """A client that sends NaN voxels gets them handled as a local run handles them; a
    volume with no finite voxel is refused."""
    from MedSAMAgentLib.errors import InputImageError
    from MedSAMAgentLib.io.volumes import Geometry

    geometry = Geometry(size=(4, 3, 2), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()))
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    array[0, 0, 0], array[1, 2, 3] = np.nan, np.inf
    digest, blob = wire.encode_volume(Volume(array=array, geometry=geometry, modality="OT"))
    back = wire.decode_volume(blob, digest, LIMIT)
    assert back.array[0, 0, 0] == 1.0 and back.array[1, 2, 3] == 22.0 and np.isfinite(back.array).all()
    nothing = Volume(array=np.full((2, 3, 4), np.nan, np.float32), geometry=geometry, modality="OT")
    with pytest.raises(InputImageError, match="holds no finite voxel"):
        wire.decode_volume(*reversed(wire.encode_volume(nothing)), LIMIT)


def test_a_dicom_volume_sends_voxels_and_geometry_only(tmp_path):
    """The source series (files, UIDs, patient) stays on this computer for a DICOM SEG."""
    from Testing.fixtures.dicom_series import anatomy_series

    writer, _, _ = anatomy_series(tmp_path / "series", step=6)
    volume = read_volume(tmp_path / "series", log=lambda _: None)
    assert volume.dicom.series_uid == writer.series_uid
    digest, blob = wire.encode_volume(volume)
    header, _ = wire._unframe(blob, wire.VOLUME_MAGIC, "volume")
    assert set(header) == {"shape", "dtype", "spacing", "origin", "direction", "modality", "sha256"}
    for private in (writer.series_uid, writer.study_uid, writer.frame_of_reference_uid, "TEST-001", "Anatomy^Test"):
        assert private.encode() not in blob
    assert wire.decode_volume(blob, digest, LIMIT).dicom is None
