"""The FGD extractor's velocity input and feature standardisation, and the shipped checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from racer_env.metrics.fgd import (
    EXTRACTOR_SHA256,
    FPS,
    SCALE_MM,
    VELOCITY_FPS,
    WINDOW,
    FeatureExtractor,
    load_extractor,
)


def linear_windows(n: int = 40, joints: int = 4, seed: int = 0) -> np.ndarray:
    """(n, WINDOW, J, 3) windows of joints moving at constant random velocities (mm per frame)."""
    rng = np.random.default_rng(seed)
    start, vel = rng.normal(0, 200, (n, 1, joints, 3)), rng.normal(0, 20, (n, 1, joints, 3))
    return start + vel * np.arange(WINDOW)[None, :, None, None]


def test_velocity_channels_hold_the_scaled_frame_differences():
    w = linear_windows()
    x = FeatureExtractor(n_joints=4, velocity=True).prepare(w).numpy()  # (n, 2*J*3, WINDOW)
    assert x.shape == (len(w), 24, WINDOW)
    per_frame = (w[:, 1] - w[:, 0]).reshape(len(w), -1) / SCALE_MM * FPS / VELOCITY_FPS  # (n, J*3)
    np.testing.assert_allclose(x[:, 12:, 1:], np.repeat(per_frame[:, :, None], WINDOW - 1, 2), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(x[:, 12:, 0], 0.0)
    assert FeatureExtractor(n_joints=4).prepare(w).shape == (len(w), 12, WINDOW)


def test_standardised_features_of_the_reference_windows_are_unit():
    w = linear_windows(200)
    model = FeatureExtractor(n_joints=4, dim=8, velocity=True)
    model.set_standardisation(w)
    f = model.features(w)
    np.testing.assert_allclose(f.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(f.std(0, ddof=1), 1.0, rtol=1e-3)


def test_shipped_extractor_is_the_standardised_velocity_one():
    model = load_extractor()
    assert model.velocity and model.n_joints == 16 and len(EXTRACTOR_SHA256) == 64
    assert not np.allclose(model.feature_std.numpy(), 1.0)  # standardisation is part of the checkpoint
    with pytest.raises(ValueError, match="trained on joints"):
        load_extractor(joint_names=["Hips", "Head"])
