"""The contrastive speech-gesture reward model: model, training, per-step scoring and validity metrics."""

from racer_env.reward.model import RewardConfig, RewardModel
from racer_env.reward.scorer import RewardScorer

__all__ = ["RewardConfig", "RewardModel", "RewardScorer"]
