"""racer_env: everything that defines the RACER gesture MDP, and nothing of the agents that act in it.

Motion and audio representations, corpora (wav + bvh import and the built-in synthetic speaker), the VQ-VAE
codebook, the contrastive reward model, the Gymnasium environments (registered on import), the Minari dataset
builder, the metrics and the file writers. It imports nothing from ``racer_agents`` (tests/test_layering.py).
"""

__version__ = "0.1.0"

import gymnasium as _gym

#: environment ids; kwargs are JSON values only (the workspace is a path string).
ENV_IDS = ("racer/GestureSynthesis-v0", "racer/GestureSynthesisClip-v0", "racer/GestureSynthesisDistance-v0")

_gym.register(
    id="racer/GestureSynthesis-v0",
    entry_point="racer_env.envs.gesture:GestureSynthesisEnv",
    vector_entry_point="racer_env.envs.vector:GestureSynthesisVectorEnv",
    kwargs={"split": "train", "segment_codes": 15},
)
# the paper's distance-reward ablation: negative pose distance to the ground truth instead of the contrastive model
_gym.register(
    id="racer/GestureSynthesisDistance-v0",
    entry_point="racer_env.envs.gesture:GestureSynthesisEnv",
    vector_entry_point="racer_env.envs.vector:GestureSynthesisVectorEnv",
    kwargs={"split": "train", "segment_codes": 15, "reward": "distance"},
)
# whole held-out clips, for evaluation
_gym.register(
    id="racer/GestureSynthesisClip-v0",
    entry_point="racer_env.envs.gesture:GestureSynthesisEnv",
    vector_entry_point="racer_env.envs.vector:GestureSynthesisVectorEnv",
    kwargs={"split": "test", "segment_codes": None},
)

_LAZY = {
    "VQVAE": "racer_env.vqvae.model",
    "VQVAEConfig": "racer_env.vqvae.model",
    "RewardModel": "racer_env.reward.model",
    "RewardScorer": "racer_env.reward.scorer",
    "Corpus": "racer_env.corpus.store",
    "GestureSynthesisEnv": "racer_env.envs.gesture",
    "GestureSynthesisVectorEnv": "racer_env.envs.vector",
}


def __getattr__(name: str):
    """Public classes, imported on first use so that ``import racer_env`` does not import torch."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'racer_env' has no attribute {name!r}")
