"""racer_env: everything that defines the RACER gesture MDP.

Motion and audio representations, corpora (wav + bvh import and the built-in synthetic speaker), and,
in later stages, the VQ-VAE codebook, the contrastive reward model and the Gymnasium environments.
"""

__version__ = "0.1.0"
