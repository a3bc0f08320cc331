"""What the released MedSAM-Agent model was trained to see and answer.

The system prompt, tool schemas and turn texts are the ones of the model's training
recipe (CUHK-AIM-Group/MedSAM-Agent, RL stage: `RL-verl/recipe/medsam_agent`); the model
behaves worse with any other wording, so they are protocol constants, not prose to edit.
Coordinates are integers on a 0-999 grid over the 512x512 image the model sees.
"""

from __future__ import annotations

import json

MODEL_IMAGE_SIZE = 512
COORDINATE_SCALE = 1000  # the RL reward mapped v -> v / 1000 * size; the model learned that grid
MAX_COORDINATE = 999
MAX_ACTIONS = 5
HISTORY_TURNS = 5
MAX_NEW_TOKENS = 128
OVERLAY_ALPHA = 0.5
OVERLAY_COLOUR = (0, 255, 0)
CLICK_REPLACE_RADIUS = 3.0  # slice pixels: a click this close to an opposite click replaces it

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add_bbox",
            "description": "Add a bounding box to initialize or refine the segmentation.",
            "parameters": {
                "type": "object",
                "properties": {
                    "bbox_2d": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "minItems": 4,
                        "maxItems": 4,
                        "description": "2D bounding box in [x1, y1, x2, y2] format",
                    }
                },
                "required": ["bbox_2d"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "add_point",
            "description": "Add a point to refine the mask (positive to include areas, negative to exclude areas).",
            "parameters": {
                "type": "object",
                "properties": {
                    "point_2d": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "minItems": 2,
                        "maxItems": 2,
                        "description": "2D coordinate point in [x, y] format, with x and y in range [0, 999]",
                    },
                    "point_type": {
                        "type": "string",
                        "enum": ["positive", "negative"],
                        "description": "Type of point: 'positive' to expand mask, 'negative' to refine mask",
                    },
                },
                "required": ["point_2d", "point_type"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "stop_action",
            "description": "Stop the refinement process when the mask accurately covers the target object.",
            "parameters": {"type": "object", "properties": {}, "required": []},
        },
    },
]
TOOL_NAMES = tuple(tool["function"]["name"] for tool in TOOLS)

SYSTEM_PROMPT = (
    "You are a professional segmentation annotator specializing in mask creation and refinement. "
    "Your core task is to segment the USER-SPECIFIED TARGET REGION from the provided image. "
    "No preliminary mask is available—you must first create an initial mask using the tool, then iteratively "
    "refine it to achieve pixel-level accuracy. "
    "The mask will be displayed as a semi-transparent green overlay; your goal is to ensure it exactly covers "
    "the entire target region and excludes all non-target areas (e.g., background, adjacent objects).\n\n"
    "# Tools\n\n"
    "You must call one function to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n"
    "<tools>\n"
    + "\n".join(json.dumps(tool) for tool in TOOLS)
    + "\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n"
    "<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call>\n\n"
    "Only use the provided functions to complete your task. Do not invent or assume any other functions. "
    "Carefully consider the current mask state before each action."
)


def first_turn_text(description: str) -> str:
    return f"The target to be segmented is: {description}.\nNow, please analyze the original image, then decide your first action."


FOLLOW_UP_TEXT = (
    "Here is the updated mask after your previous action.\n"
    "Based on this, what is your next action? If the mask is now accurate, you can call 'stop_action' to finish."
)


def tool_call_text(name: str, arguments: dict) -> str:
    """A tool call exactly as the model writes it."""
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"
