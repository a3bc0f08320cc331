"""The `qwen` policy through the real processor, chat template and `generate`, with a tiny
random Qwen3-VL saved offline and reloaded with local files only."""

from __future__ import annotations

import numpy as np
import pytest

from MedSAMAgentLib.agent.loop import END_INVALID, END_MAX_ACTIONS, END_STOP, END_STOP_BEFORE_ACTING, run_agent
from MedSAMAgentLib.agent.policies import create_policy
from MedSAMAgentLib.errors import AgentError
from Testing.fixtures.segmenters import BoxFillSegmenter


def test_a_whole_loop_through_the_real_pipeline_ends_cleanly(tiny_qwen_dir, phantom):
    from MedSAMAgentLib.segmenters.base import slice_frames

    with pytest.warns(RuntimeWarning, match="runs on the CPU"):
        policy = create_policy("qwen", model=str(tiny_qwen_dir), device="cpu")
    image = slice_frames(phantom[0], "axial")[20]
    trajectory = run_agent(image, "right kidney in abdomen CT", policy, BoxFillSegmenter())
    # random weights answer noise: what matters is a clean end with the reason recorded
    assert trajectory.end_reason in (END_INVALID, END_STOP, END_STOP_BEFORE_ACTING, END_MAX_ACTIONS)
    assert trajectory.turns and all(isinstance(turn.text, str) for turn in trajectory.turns)
    record = trajectory.as_dict()
    assert record["end_reason"] == trajectory.end_reason
    assert all("model_text" in turn and "action" in turn for turn in record["turns"])
    if trajectory.end_reason == END_INVALID:
        assert record["turns"][-1]["action"]["error"]


def test_greedy_answers_are_reproducible(tiny_qwen_dir):
    with pytest.warns(RuntimeWarning, match="runs on the CPU"):
        policy_a = create_policy("qwen", model=str(tiny_qwen_dir), device="cpu")
    image = np.full((120, 90, 3), 70, np.uint8)
    first = run_agent(image, "liver", policy_a, BoxFillSegmenter())
    second = run_agent(image, "liver", policy_a, BoxFillSegmenter())
    assert [t.text for t in first.turns] == [t.text for t in second.turns]


def test_missing_model_folder_and_offline_hub(tmp_path):
    with pytest.raises(AgentError, match="agent model not found"):
        create_policy("qwen", model=str(tmp_path / "no-model"), device="cpu")
    with pytest.raises(AgentError, match=r"the model someone/absent-model is not on this machine .* the hub is offline .*"
                                         r"`medsam-agent models fetch someone/absent-model --to DIR`.*--from DIR"):
        create_policy("qwen", model="someone/absent-model", device="cpu")
