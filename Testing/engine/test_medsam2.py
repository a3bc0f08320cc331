"""MedSAM2 path: the real architecture from the shipped config, random weights saved in
the released checkpoint format. Random weights make masks meaningless, so these tests
check loading, bookkeeping and data flow, not quality."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from MedSAMAgentLib import cli
from MedSAMAgentLib.agent.loop import run_agent
from MedSAMAgentLib.agent.protocol import tool_call_text
from MedSAMAgentLib.agent.recording import record_of
from MedSAMAgentLib.agent.records import KEY, AgentRecord
from MedSAMAgentLib.errors import CheckpointError, MedSAMAgentError
from MedSAMAgentLib.metrics import dice
from MedSAMAgentLib.prompts import Box, Point, SlicePrompts
from MedSAMAgentLib.propagation import VolumeRequest, segment
from MedSAMAgentLib.segmenters.base import Seed, slice_frames
from MedSAMAgentLib.segmenters.medsam2 import MedSAM2, _VideoFrames, resolve_checkpoint
from Testing.fixtures.policies import ScriptedPolicy


def test_shipped_config_is_medsam2_at_512(medsam2):
    model = medsam2.model
    assert model.image_size == 512
    layer = model.memory_attention.layers[0]
    assert layer.self_attn.freqs_cis.shape[0] == 32 * 32 and layer.cross_attn_image.freqs_cis.shape[0] == 32 * 32
    assert 38_000_000 < sum(p.numel() for p in model.parameters()) < 40_000_000
    assert type(model).__name__ == "SAM2VideoPredictor"


def test_missing_key_is_refused(tmp_path, random_medsam2_checkpoint):
    state = torch.load(random_medsam2_checkpoint, weights_only=True)["model"]
    state.pop(next(iter(state)))
    path = tmp_path / "incomplete.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match="is not a MedSAM2 checkpoint: keys do not match, 1 missing"):
        MedSAM2(path, device="cpu")


def test_wrong_shape_is_refused(tmp_path, random_medsam2_checkpoint):
    state = torch.load(random_medsam2_checkpoint, weights_only=True)["model"]
    name = "sam_mask_decoder.iou_prediction_head.layers.0.weight"
    state[name] = torch.zeros(3, 3)
    path = tmp_path / "reshaped.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match="is not a MedSAM2 checkpoint: .*size mismatch"):
        MedSAM2(path, device="cpu")


def test_hub_download_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache" / "hub"))
    with pytest.raises(CheckpointError, match=r"MedSAM2_latest.pt from wanglab/MedSAM2 is not on this machine .* the hub is offline .*"
                                              r"`medsam-agent models fetch medsam2 --to DIR`.*--checkpoint"):
        resolve_checkpoint(None)
    with pytest.raises(CheckpointError, match=r"MedSAM2_CTLesion.pt from wanglab/MedSAM2 is not on .* models fetch wanglab/MedSAM2/MedSAM2_CTLesion.pt"):
        resolve_checkpoint("wanglab/MedSAM2/MedSAM2_CTLesion.pt")


def test_checkpoint_references(tmp_path, random_medsam2_checkpoint):
    assert resolve_checkpoint(str(random_medsam2_checkpoint)) == random_medsam2_checkpoint
    for missing in ("./nothing.pt", str(tmp_path / "nothing.pt"), "nothing.pt"):
        with pytest.raises(CheckpointError, match="checkpoint not found"):
            resolve_checkpoint(missing)


@pytest.fixture(scope="module")
def medsam2_torch(random_medsam2_checkpoint):
    """PyTorch f32 (no converted encoder): the setting in which sam2's own code is the reference."""
    return MedSAM2(random_medsam2_checkpoint, device="cpu", runtime="torch")


@pytest.fixture(scope="module")
def key_slice(phantom) -> np.ndarray:
    return slice_frames(phantom[0], "axial")[20]  # not square: coordinates are scaled per axis


def stock_turn(predictor, prompts: SlicePrompts, mask_input=None):
    """A turn as MedSAM-Agent's training server made it: sam2's image predictor, one mask
    asked for, the best-scoring one kept with its low-resolution logits."""
    points = [[p.x, p.y] for p in prompts.points]
    masks, scores, logits = predictor.predict(
        point_coords=np.array(points) if points else None,
        point_labels=np.array([int(p.positive) for p in prompts.points]) if points else None,
        box=None if prompts.box is None else np.array(prompts.box.as_list()),
        mask_input=mask_input,
        multimask_output=False,
    )
    best = int(np.argmax(scores))
    return masks[best] > 0, logits[[best]], float(scores[best])


@pytest.fixture(scope="module")
def stock_predictor(random_medsam2_checkpoint, key_slice):
    """sam2's stock 1024 px Hiera-Tiny, loaded from the checkpoint file as the training
    server loaded it (`build_sam2` + `SAM2ImagePredictor`): a second model, built apart."""
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    predictor = SAM2ImagePredictor(build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", str(random_medsam2_checkpoint), device="cpu"))
    predictor.set_image(key_slice)
    return predictor


BOX = Box(30, 60, 90, 120)
TURNS = {
    "box": SlicePrompts(box=BOX),
    "points": SlicePrompts(points=(Point(60, 90), Point(35, 65, positive=False))),
    "box with points": SlicePrompts(box=BOX, points=(Point(60, 90), Point(35, 65, positive=False))),
}


@pytest.mark.parametrize("prompts", TURNS.values(), ids=TURNS.keys())
def test_turn_at_1024_is_sam2s_own_image_predictor(medsam2_torch, stock_predictor, key_slice, prompts):
    ours = medsam2_torch.predict_slice(key_slice, prompts)
    mask, logits, score = stock_turn(stock_predictor, prompts)
    assert ours.mask.shape == key_slice.shape[:2] and ours.mask.any()
    np.testing.assert_array_equal(ours.mask, mask)
    np.testing.assert_array_equal(ours.logits.numpy()[0], logits)
    assert ours.score == score
    assert ours.configuration.startswith("medsam2 1024 px")


def test_follow_up_turn_at_1024_takes_the_previous_logits_as_sam2_does(medsam2_torch, stock_predictor, key_slice):
    click = SlicePrompts(points=(Point(45, 100, positive=False),))
    first = medsam2_torch.predict_slice(key_slice, TURNS["box"])
    ours = medsam2_torch.predict_slice(key_slice, click, previous_logits=first.logits)
    _, first_logits, _ = stock_turn(stock_predictor, TURNS["box"])
    mask, logits, score = stock_turn(stock_predictor, click, mask_input=first_logits)
    np.testing.assert_array_equal(ours.mask, mask)
    np.testing.assert_array_equal(ours.logits.numpy()[0], logits)
    without = medsam2_torch.predict_slice(key_slice, click)
    assert not torch.equal(without.logits, ours.logits)  # the mask input reached the decoder


def test_agent_loop_at_1024_makes_the_training_servers_calls_and_records_them(medsam2_torch, stock_predictor, key_slice):
    """A box, then a click refining it through the box's logits (the server's add_bbox and
    add_click), then a stop: the loop's mask is the server's, and the record names the
    configuration of every turn that made a mask."""
    calls = [tool_call_text("add_bbox", {"bbox_2d": [150, 300, 500, 800]}),
             tool_call_text("add_point", {"point_2d": [300, 500], "point_type": "negative"}), tool_call_text("stop_action", {})]
    trajectory = run_agent(key_slice, "kidney", ScriptedPolicy(calls), medsam2_torch)
    box_turn, click_turn, _ = trajectory.turns
    assert click_turn.prompts.box is None and len(click_turn.prompts.points) == 1
    _, box_logits, _ = stock_turn(stock_predictor, box_turn.prompts)
    mask, _, _ = stock_turn(stock_predictor, click_turn.prompts, mask_input=box_logits)
    np.testing.assert_array_equal(trajectory.final_mask(), mask)
    record = AgentRecord.from_json(record_of(trajectory, KEY, 20).as_json())
    label = medsam2_torch.agent_turns.label
    assert [turn.configuration for turn in record.turns] == [label, label, ""] and "1024 px" in label


def test_both_configurations_hold_one_set_of_weights(medsam2_torch):
    turns = medsam2_torch.agent_turns.model
    propagation = medsam2_torch.model
    assert turns is not propagation and turns.image_size == 1024 and propagation.image_size == 512
    assert turns.sam_prompt_encoder.image_embedding_size == (64, 64)
    ours, theirs = turns.state_dict(), propagation.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(ours[name].data_ptr() == theirs[name].data_ptr() for name in ours)


def test_propagation_at_512_is_unchanged_by_turns_at_1024(random_medsam2_checkpoint, phantom):
    """Tracking before and after the 1024 px model is built on the same weights and used."""
    segmenter = MedSAM2(random_medsam2_checkpoint, device="cpu", runtime="torch")
    frames = slice_frames(phantom[0], "axial")
    seed = Seed(20, prompts=TURNS["box"])
    before = masks_by_slice(segmenter.track(frames, seed, {}, 22))
    segmenter.predict_slice(frames[20], TURNS["box with points"])
    after = masks_by_slice(segmenter.track(frames, seed, {}, 22))
    assert before.keys() == after.keys() == {20, 21, 22} and before[21].any()
    for index in before:
        np.testing.assert_array_equal(before[index], after[index])


def test_turns_at_512_run_medsam2s_own_configuration(random_medsam2_checkpoint, key_slice):
    segmenter = MedSAM2(random_medsam2_checkpoint, device="cpu", runtime="torch", agent_turn_size=512)
    prediction = segmenter.predict_slice(key_slice, TURNS["box"])
    assert segmenter.agent_turns.model is segmenter.model
    assert tuple(prediction.logits.shape) == (1, 1, 128, 128) and prediction.configuration.startswith("medsam2 512 px")
    assert tuple(segmenter.logits_from_mask(prediction.mask).shape) == (1, 1, 128, 128)
    with pytest.raises(MedSAMAgentError, match="at 1024 or 512 px, not 768"):
        MedSAM2(random_medsam2_checkpoint, device="cpu", agent_turn_size=768)


def test_propagates_both_ways_and_keeps_locked_slices(medsam2, phantom):
    volume, _ = phantom
    frames = slice_frames(volume, "axial")
    key = 20
    seed = np.zeros(frames.image_shape, bool)
    seed[60:110, 30:80] = True
    locked = np.zeros(frames.image_shape, bool)
    locked[70:75, 40:43] = True
    seen = []
    request = VolumeRequest(key, key_mask=seed, locked={23: locked}, slice_range=(17, 24), seeded_components_only=False)
    result = segment(volume, medsam2, request, frames, progress=lambda step, done, total: seen.append(step))
    processed = sorted(int(step.split()[-1]) for step in seen if step.startswith("medsam2: slice"))
    assert processed == list(range(17, 25))  # forward 20..24 and backward 19..17, each once
    np.testing.assert_array_equal(result.stack[23], locked)
    np.testing.assert_array_equal(result.stack[key], seed)  # a mask seed is a conditioning frame, kept as is
    assert not result.stack[:17].any() and not result.stack[25:].any()


def masks_by_slice(track) -> dict:
    return {index: mask for index, mask, _ in track}


def test_every_seed_on_the_way_is_a_conditioning_frame(medsam2, phantom):
    """Tracking from one seed towards another: sam2 takes the other seed's mask as a
    conditioning frame and returns it there (through its own resampling); without it, it
    predicts that frame from the first seed (random weights: anything but that mask)."""
    volume, _ = phantom
    frames = slice_frames(volume, "axial")
    seed = np.zeros(frames.image_shape, bool)
    seed[60:110, 30:80] = True
    other = np.zeros(frames.image_shape, bool)
    other[20:40, 100:150] = True
    conditioned = masks_by_slice(medsam2.track(frames, Seed(20, mask=seed), {}, 23, continues=True, conditioning=(Seed(23, mask=other),)))
    assert dice(conditioned[23], other) > 0.95, dice(conditioned[23], other)
    alone = masks_by_slice(medsam2.track(frames, Seed(20, mask=seed), {}, 23, continues=True))
    assert dice(alone[23], other) < 0.5, dice(alone[23], other)


def test_lazy_frames_match_frames_prepared_up_front(medsam2, phantom):
    """sam2 reads frames only through len() and [i]; preparing them lazily changes nothing."""
    volume, _ = phantom
    frames = slice_frames(volume, "axial")
    lazy = _VideoFrames(frames, 16, 24, 512, torch.device("cpu"))
    eager = torch.stack([lazy[i] for i in range(len(lazy))])
    seed = np.zeros(frames.image_shape, bool)
    seed[60:110, 30:80] = True
    outputs = []
    for images in (lazy, eager):
        with torch.inference_mode():
            from MedSAMAgentLib.segmenters.medsam2 import _inference_state

            state = _inference_state(images, *frames.image_shape, torch.device("cpu"))
            medsam2.model.add_new_mask(state, 4, 1, torch.from_numpy(seed))
            outputs.append([logits.clone() for _, _, logits in medsam2.model.propagate_in_video(state, start_frame_idx=4)])
    for a, b in zip(*outputs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_command_line_with_box_and_clicks(tmp_path, random_medsam2_checkpoint, phantom):
    volume, _ = phantom
    image = volume.geometry.apply_to(sitk.GetImageFromArray(volume.array))
    source = tmp_path / "ct.nii.gz"
    sitk.WriteImage(image, str(source))
    output = tmp_path / "out.seg.nrrd"
    status = cli.main([
        "segment", str(source), "-o", str(output), "--segmenter", "medsam2", "--checkpoint", str(random_medsam2_checkpoint),
        "--device", "cpu", "--slice", "20", "--box", "30", "60", "90", "120", "--point", "60", "90", "pos",
        "--point", "35", "65", "neg", "--range", "18", "22", "--all-components",
    ])
    assert status == 0
    written = sitk.ReadImage(str(output))
    assert written.GetSize() == image.GetSize()
    labels = sitk.GetArrayFromImage(written)
    assert not labels[:18].any() and not labels[23:].any()
