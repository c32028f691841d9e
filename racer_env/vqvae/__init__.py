"""The gesture codebook: VQ-VAE model, training, tokenisation and evaluation."""

from racer_env.vqvae.model import PRESETS, VQVAE, VQVAEConfig

__all__ = ["PRESETS", "VQVAE", "VQVAEConfig"]
