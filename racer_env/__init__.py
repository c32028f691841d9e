"""racer_env: everything that defines the RACER gesture MDP.

Motion and audio representations, corpora (wav + bvh import and the built-in synthetic speaker), and,
in later stages, the VQ-VAE codebook, the contrastive reward model and the Gymnasium environments.
"""

__version__ = "0.1.0"

_LAZY = {
    "VQVAE": "racer_env.vqvae.model",
    "VQVAEConfig": "racer_env.vqvae.model",
    "RewardModel": "racer_env.reward.model",
    "RewardScorer": "racer_env.reward.scorer",
    "Corpus": "racer_env.corpus.store",
}


def __getattr__(name: str):
    """Public classes, imported on first use so that ``import racer_env`` does not import torch."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'racer_env' has no attribute {name!r}")
