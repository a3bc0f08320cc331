"""The released MedSAM-Agent model (Qwen3-VL-8B fine-tuned with multi-turn RL), run
in-process with transformers.

Driven as trained: chat template, `qwen_vl_utils.process_vision_info(..., image_patch_size=16)`,
greedy decoding, at most 128 new tokens. On CUDA the weights are bf16 with SDPA attention;
on CPU it runs in fp32 and warns that a turn takes minutes. Greedy decoding is sped up with
prompt-lookup drafting, which cannot change the answer: tool calls repeat text already in
the prompt (the tool schemas, earlier calls), so drafts from it are usually accepted.
"""

from __future__ import annotations

import warnings

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from ...errors import AgentError
from ...segmenters.devices import resolve_device
from ..protocol import MAX_NEW_TOKENS
from .agent_model import DEFAULT_MODEL, model_folder
from .base import Observation, Policy

IMAGE_PATCH_SIZE = 16
PROMPT_LOOKUP_TOKENS = 10


class _CancelCriterion(StoppingCriteria):
    """Ends generation at the next token once the user cancels (a CPU turn takes minutes)."""

    def __init__(self, cancel):
        self.cancel = cancel

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), bool(self.cancel()), dtype=torch.bool, device=input_ids.device)


class QwenPolicy(Policy):
    name = "qwen"

    def __init__(self, model: str | None = None, device: str = "auto", dtype: torch.dtype | None = None, attention: str = "sdpa", prompt_lookup: bool = True):
        from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

        self.reference = model or DEFAULT_MODEL
        self.device = resolve_device(device)
        self.prompt_lookup = prompt_lookup
        source = model_folder(self.reference)
        if dtype is None:
            dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        try:
            self.processor = AutoProcessor.from_pretrained(source)
            self.model = Qwen3VLForConditionalGeneration.from_pretrained(source, dtype=dtype, attn_implementation=attention)
        except (OSError, ValueError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
            raise AgentError(f"cannot load the agent model {self.reference} from {source} ({reason})") from None
        self.model.to(self.device).eval()
        if self.device.type == "cpu":
            warnings.warn(
                "the agent model runs on the CPU: expect minutes per turn for the 8B model; "
                "use a CUDA GPU, or --policy endpoint with a GPU server",
                RuntimeWarning,
                stacklevel=2,
            )

    def describe(self) -> str:
        return f"qwen {self.reference} on {self.device.type}"

    @torch.inference_mode()
    def respond(self, observation: Observation) -> str:
        from qwen_vl_utils import process_vision_info

        messages = observation.messages
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        images, videos = process_vision_info(messages, image_patch_size=IMAGE_PATCH_SIZE)
        inputs = self.processor(text=[text], images=images, videos=videos, padding=True, return_tensors="pt").to(self.device)
        options = {"max_new_tokens": MAX_NEW_TOKENS, "do_sample": False}
        if observation.cancel is not None:
            options["stopping_criteria"] = StoppingCriteriaList([_CancelCriterion(observation.cancel)])
        if self.prompt_lookup:
            options["prompt_lookup_num_tokens"] = PROMPT_LOOKUP_TOKENS
        generated = self.model.generate(**inputs, **options)
        answer = generated[:, inputs["input_ids"].shape[1]:]
        return self.processor.batch_decode(answer, skip_special_tokens=True, clean_up_tokenization_spaces=False)[0]
