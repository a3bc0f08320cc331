"""MedSAM2's two configurations and the one set of weights they share.

- Propagation: MedSAM2's own configuration, 512 px, sam2's video predictor (what MedSAM2
  was trained and is run with on volumes).
- The agent's turns: sam2's stock SAM2.1 Hiera-Tiny configuration, 1024 px, the image model
  MedSAM-Agent's segmentation server loaded the same checkpoint into during reinforcement
  learning; the policy learned from the masks it gave.

The weights have the same shapes in both, so the 1024 px model is a view: its parameters
and buffers are the 512 px model's tensors, not copies. What depends on the image size
(the prompt encoder's grid, the memory attention's rotary tables, the encoder's position
embeddings, which are interpolated at run time) is not a weight and is built for 1024.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

PROPAGATION_CONFIG = "medsam2_hiera_t512.yaml"
TRAINED_TURNS_CONFIG = "medsam2_hiera_t1024_image.yaml"


def build_model(config_file: str = PROPAGATION_CONFIG) -> torch.nn.Module:
    """Instantiate the architecture from a shipped config (sam2's base plus the listed
    changes) without touching hydra's global state."""
    import sam2
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    spec = OmegaConf.load(resources.files("MedSAMAgentLib.configs").joinpath(config_file))
    config = OmegaConf.load(Path(sam2.__file__).parent / spec.base)
    for key, value in spec.overrides.items():
        OmegaConf.update(config, key, value, force_add=True)
    OmegaConf.resolve(config)
    return instantiate(config.model, _recursive_=True)


@torch.no_grad()
def model_sharing_weights(config_file: str, weights: torch.nn.Module) -> torch.nn.Module:
    """The architecture of `config_file` running on `weights`' own parameter and buffer
    tensors (same storage), for `weights` already loaded and on their device (moving them
    later would leave the view behind). Every name and shape must match. The new model's own freshly initialised weights are dropped at once,
    so memory holds one set of weights; building it briefly needs a second, as loading the
    checkpoint itself does."""
    view = build_model(config_file)
    view.load_state_dict(weights.state_dict(), strict=True, assign=True)
    return view.eval()
