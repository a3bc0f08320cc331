"""Prompts on several slices and updates of an earlier result, through a real server: the
same voxels as on this computer."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from MedSAMAgentLib.engine.interface import SegmentationRequest
from MedSAMAgentLib.orientation import SlicePlane
from MedSAMAgentLib.prompts import Box, SlicePrompts
from MedSAMAgentLib.remote import RemoteEngine
from Testing.fixtures.server import kidney_request, written_remotely_and_locally

FURTHER = 4  # slices from the kidney's largest slice to the second seed


def box_indices(kidney: np.ndarray, k: int) -> list[str]:
    """`--box` arguments (i0 j0 i1 j1) around the kidney on axial slice k, 3 voxels wider."""
    j, i = np.nonzero(kidney[k])
    return [str(v) for v in (i.min() - 3, j.min() - 3, i.max() + 3, j.max() + 3)]


def test_two_seeds_on_a_server_write_what_a_local_run_writes(tmp_path, server, keys, phantom, litemedsam, monkeypatch):
    volume, organs = phantom
    kidney = organs["right kidney"]
    source = tmp_path / "ct.nrrd"
    sitk.WriteImage(volume.geometry.apply_to(sitk.GetImageFromArray(volume.array)), str(source))
    key = kidney_request(phantom).key_slice  # the phantom's axial slices are its k slices
    arguments = [str(source), "--slice", str(key), "--box", *box_indices(kidney, key),
                 "--box-at", str(key + FURTHER), *box_indices(kidney, key + FURTHER), "--range", str(key - 2), str(key + FURTHER + 2)]

    remote, written = written_remotely_and_locally(tmp_path, arguments, server.url, keys[1]["alice"], litemedsam, monkeypatch)
    assert f"prompts on axial slices {key + FURTHER} too" in remote.stderr
    assert written["remote"].any() and np.array_equal(written["remote"], written["local"])
    assert all(written["remote"][k].any() for k in range(key - 2, key + FURTHER + 3))


def test_an_update_on_a_server_keeps_what_the_new_seed_cannot_reach(server, keys, phantom, local_engine):
    """The earlier result carries a block no model would draw, below its seed: the update
    from a box further up keeps it voxel for voxel, here and on the server alike."""
    volume, organs = phantom
    first = local_engine.run(kidney_request(phantom))
    key = first.key_slice
    plane = SlicePlane.for_view(volume.geometry, "axial")
    earlier = plane.to_display(first.mask).copy()
    earlier[key - 2, :8, :8] = True
    truth = plane.to_display(organs["right kidney"])
    update = SegmentationRequest(
        volume, key_slice=key + FURTHER, prompts=SlicePrompts(box=Box.around(truth[key + FURTHER], 3)),
        previous=plane.from_display(earlier), settled=(key,), slice_range=(key - 2, key + FURTHER + 2),
    )
    here = plane.to_display(local_engine.run(update).mask)
    on_server = plane.to_display(RemoteEngine(server.url, api_key=keys[1]["bob"]).run(update).mask)
    assert np.array_equal(on_server, here)
    np.testing.assert_array_equal(on_server[: key + 1], earlier[: key + 1])
    assert all(on_server[index].any() for index in range(key, key + FURTHER + 3))
