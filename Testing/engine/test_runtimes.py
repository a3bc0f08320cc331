"""The fast CPU runtime: same masks as PyTorch f32 on real anatomy, a fallback when it is
not installed, and a converted-model cache that rebuilds itself when damaged."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from MedSAMAgentLib.errors import MedSAMAgentError
from MedSAMAgentLib.io.volumes import read_volume
from MedSAMAgentLib.metrics import dice
from MedSAMAgentLib.prompts import Box, Point, SlicePrompts
from MedSAMAgentLib.propagation import VolumeRequest, segment
from MedSAMAgentLib.segmenters.base import slice_frames
from MedSAMAgentLib.segmenters.runtimes import TORCH_F32, select_runtime
from MedSAMAgentLib.segmenters.runtimes.cache import CACHE_ENVIRONMENT_VARIABLE, MANIFEST, CacheEntry
from MedSAMAgentLib.segmenters.runtimes.hardware import cpu_supports_bf16
from Testing.fixtures.anatomy import ct_head, evenly_spaced_slices, lesion

REPOSITORY = Path(__file__).resolve().parents[2]
CONFIDENT = 0.85  # the model's own IoU estimate above which its mask is well defined
BLOCK_OPENVINO = """
import sys
class WithoutOpenVINO:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "openvino":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, WithoutOpenVINO())
from MedSAMAgentLib.cli import main
sys.exit(main(sys.argv[1:]))
"""


def anatomy_slices(case: str, count: int):
    """(frames, truth stack, slice indices): `count` slices spread over a lesion's labelled
    slices or over the CT head's brain."""
    if case == "ct head":
        path, reference = ct_head()
        frames = slice_frames(read_volume(path), "axial", "brain")
        truth = frames.plane.to_display(reference)
        return frames, truth, evenly_spaced_slices(truth, count)
    path, reference = lesion(case)
    frames = slice_frames(read_volume(path), "axial")
    truth = frames.plane.to_display(reference)
    return frames, truth, evenly_spaced_slices(truth, count, min_area_fraction=1 / truth[0].size)  # any labelled slice


@pytest.mark.parametrize("case, count", [("lung2", 6), ("brain1", 7), ("ct head", 5)])
def test_fast_runtime_gives_the_masks_of_pytorch_f32(litemedsam, litemedsam_torch, case, count):
    """Per slice, Dice >= 0.99 between the runtimes wherever the model is sure of its mask
    (where it is not, bf16 rounding moves an uncertain boundary: there the mean Dice
    against the label must stay within 0.01)."""
    assert litemedsam.runtime.name == "openvino" and litemedsam.runtime.bf16 == cpu_supports_bf16()
    assert litemedsam_torch.runtime == TORCH_F32
    frames, truth, indices = anatomy_slices(case, count)
    fast_scores, torch_scores, confident = [], [], 0
    for index in indices:
        prompts = SlicePrompts(box=Box.around(truth[index], margin=2))
        fast = litemedsam.predict_slice(frames[index], prompts)
        reference = litemedsam_torch.predict_slice(frames[index], prompts)
        if reference.score >= CONFIDENT:
            confident += 1
            assert dice(fast.mask, reference.mask) >= 0.99, f"slice {index}"
        fast_scores.append(dice(fast.mask, truth[index]))
        torch_scores.append(dice(reference.mask, truth[index]))
    assert confident >= 3
    assert abs(np.mean(fast_scores) - np.mean(torch_scores)) <= 0.01


def test_litemedsam_mask_decoder_in_the_runtime_gives_pytorchs_masks_to_the_pixel(litemedsam):
    """The decoder runs in f32 even where the encoder uses bf16: the tracking rules compare
    its IoU estimate with a floor, and bf16 moved it across on a whole brain's edge."""
    from MedSAMAgentLib.segmenters.litemedsam import LiteMedSAM, _BoxAndPointDecoder
    from MedSAMAgentLib.segmenters.runtimes.openvino_backend import OpenVINOModule

    assert isinstance(litemedsam._decode, OpenVINOModule)
    reference = LiteMedSAM(device="cpu")
    reference._decode = _BoxAndPointDecoder(reference.model)  # PyTorch's decoder behind the same encoder
    frames, truth, indices = anatomy_slices("brain1", 2)
    for index in indices:
        box = Box.around(truth[index], margin=2)
        row, col = np.argwhere(truth[index]).mean(axis=0)
        for prompts in (SlicePrompts(box=box), SlicePrompts(box=box, points=(Point(float(col), float(row)), Point(box.x0, box.y0, False)))):
            fast, slow = litemedsam.predict_slice(frames[index], prompts), reference.predict_slice(frames[index], prompts)
            assert fast.mask.sum() > 100
            np.testing.assert_array_equal(fast.mask, slow.mask)
            assert abs(fast.score - slow.score) < 1e-4


def test_medsam2_encoders_run_in_the_runtime_with_pytorch_features(medsam2, random_medsam2_checkpoint):
    """Both configurations' encoders: 512 px (propagation) and 1024 px (the agent's turns)."""
    from MedSAMAgentLib.segmenters.medsam2 import MedSAM2, _to_model_input

    reference = MedSAM2(random_medsam2_checkpoint, device="cpu", runtime="torch")
    assert medsam2.runtime.name == "openvino" and reference.runtime == TORCH_F32
    frames, _, indices = anatomy_slices("lung2", 3)
    image = frames[int(indices[1])]
    for fast_model, slow_model in ((medsam2.model, reference.model), (medsam2.agent_turns.model, reference.agent_turns.model)):
        tensor = _to_model_input(image, slow_model.image_size, torch.device("cpu"))[None]
        with torch.inference_mode():
            fast, slow = fast_model.forward_image(tensor)["backbone_fpn"], slow_model.forward_image(tensor)["backbone_fpn"]
        for got, expected in zip(fast, slow):
            assert got.shape == expected.shape
            relative = float((got.float() - expected).norm() / expected.norm())
            assert relative < 0.05


def test_without_openvino_the_command_line_falls_back_to_pytorch(tmp_path, litemedsam_torch):
    """A real interpreter in which importing openvino fails: the command line warns, runs
    PyTorch f32 and writes the reference segmentation (to the rounding of another process,
    whose thread count may sum in another order)."""
    path, reference = lesion("lung2")
    volume = read_volume(path)
    frames = slice_frames(volume, "axial")
    truth = frames.plane.to_display(reference)
    key = int(np.argmax(truth.sum(axis=(1, 2))))
    box = Box(*(float(round(value)) for value in Box.around(truth[key], margin=2).as_list()))
    output = tmp_path / "tumour.seg.nrrd"
    arguments = ["segment", str(path), "-o", str(output), "--device", "cpu", "--slice", str(key),
                 "--box", *(str(value) for value in box.as_list()), "--range", str(key), str(key)]
    completed = subprocess.run([sys.executable, "-c", BLOCK_OPENVINO, *arguments], capture_output=True, encoding="utf-8", timeout=300,
                               cwd=REPOSITORY, env=dict(os.environ, PYTHONPATH=str(REPOSITORY)))
    assert completed.returncode == 0, completed.stderr
    assert "warning: the OpenVINO runtime is not installed (No module named 'openvino')" in completed.stderr
    assert "running PyTorch in f32" in completed.stderr
    expected = segment(volume, litemedsam_torch, VolumeRequest(key, SlicePrompts(box=box), slice_range=(key, key)), frames).mask
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(output))) > 0
    assert expected.sum() > 1000
    assert dice(written, expected) >= 0.99


def test_corrupt_cached_model_is_rebuilt(tmp_path, monkeypatch, capfd, litemedsam, converted_model_cache):
    from MedSAMAgentLib.segmenters.litemedsam import LiteMedSAM

    # The decoder's entry is damaged (the encoder's is sound): the same cache code, and a
    # rebuild of seconds rather than the encoder's half minute.
    for entry in converted_model_cache.glob("litemedsam-*"):
        shutil.copytree(entry, tmp_path / entry.name)
    (original,) = converted_model_cache.glob("litemedsam-mask-decoder-*")
    weights = tmp_path / original.name / "model.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = bytes(4096)  # zeroed weights: wrong masks if it were used
    weights.write_bytes(bytes(data))
    monkeypatch.setenv(CACHE_ENVIRONMENT_VARIABLE, str(tmp_path))
    capfd.readouterr()

    rebuilt = LiteMedSAM(device="cpu")
    conversions = [line for line in capfd.readouterr().err.splitlines() if "converted to OpenVINO" in line]
    assert len(conversions) == 1 and "mask decoder" in conversions[0]
    assert weights.read_bytes() == (original / "model.bin").read_bytes()
    frames, truth, indices = anatomy_slices("brain1", 2)
    for index in indices:
        prompts = SlicePrompts(box=Box.around(truth[index], margin=2))
        np.testing.assert_array_equal(rebuilt.predict_slice(frames[index], prompts).mask, litemedsam.predict_slice(frames[index], prompts).mask)

    LiteMedSAM(device="cpu")
    assert "converted" not in capfd.readouterr().err  # a sound cache is used as it is


def write_two_files(folder: Path) -> None:
    (folder / "a.bin").write_bytes(b"\x01" * 1000)
    (folder / "b.xml").write_text("<net/>")


@pytest.mark.parametrize("damage", ["truncate", "delete", "manifest", "facts"])
def test_cache_entry_counts_damaged_files_as_absent_and_replaces_them(tmp_path, damage):
    entry = CacheEntry(tmp_path, "model-key", {"weights_sha256": "ab" * 32})
    assert not entry.valid()
    folder = entry.write(write_two_files)
    assert entry.valid() and sorted(path.name for path in folder.iterdir()) == ["a.bin", "b.xml", MANIFEST]
    if damage == "truncate":
        (folder / "a.bin").write_bytes(b"\x01" * 999)
    elif damage == "delete":
        (folder / "b.xml").unlink()
    elif damage == "manifest":
        (folder / MANIFEST).write_text("{not json")
    else:
        entry = CacheEntry(tmp_path, "model-key", {"weights_sha256": "cd" * 32})
    assert not entry.valid()
    entry.write(write_two_files)
    assert entry.valid() and (folder / "a.bin").read_bytes() == b"\x01" * 1000
    assert [path.name for path in tmp_path.iterdir()] == ["model-key"]  # no staging folder left behind


def test_a_failed_conversion_leaves_no_entry(tmp_path):
    entry = CacheEntry(tmp_path, "model-key", {})

    def fail(folder: Path) -> None:
        (folder / "half.bin").write_bytes(b"\x00" * 10)
        raise RuntimeError("converter crashed")

    with pytest.raises(RuntimeError, match="converter crashed"):
        entry.write(fail)
    assert list(tmp_path.iterdir()) == []


def test_runtime_choices():
    cpu = torch.device("cpu")
    assert select_runtime("torch", cpu) == TORCH_F32
    assert select_runtime("auto", cpu).name == "openvino"
    with pytest.raises(MedSAMAgentError, match="unknown runtime 'fast'; choose one of auto, torch, openvino"):
        select_runtime("fast", cpu)
    with pytest.raises(MedSAMAgentError, match="--runtime openvino runs on the CPU, not on cuda"):
        select_runtime("openvino", torch.device("cuda"))
    assert select_runtime("auto", torch.device("cuda")) == TORCH_F32  # CUDA keeps PyTorch with bf16 autocast
