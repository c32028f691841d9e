"""The gesture MDP environments: Gymnasium's checker, determinism, pickling, errors, vector equivalence."""

import json
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import racer_env
from racer_env.envs.gesture import GestureSynthesisEnv
from racer_env.envs.vector import GestureSynthesisVectorEnv
from racer_env.reward.scorer import RewardScorer


@pytest.fixture
def env(trained_workspace):
    return GestureSynthesisEnv(str(trained_workspace), segment_codes=6)


def rollout(env, seed: int, steps: int, action_seed: int = 1):
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        out += [obs, reward, terminated]
        if terminated or truncated:
            obs, _ = env.reset()
            out.append(obs)
    return out


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    return bool(np.all(a == b))


def test_check_env_passes_with_warnings_as_errors(trained_workspace):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ws = str(trained_workspace)
        check_env(gym.make("racer/GestureSynthesis-v0", workspace=ws, segment_codes=6, render_mode="rgb_array",
                           disable_env_checker=True).unwrapped)
        check_env(gym.make("racer/GestureSynthesisClip-v0", workspace=ws, disable_env_checker=True).unwrapped)


def test_same_seed_steps_identically_for_50_steps(trained_workspace):
    a = rollout(GestureSynthesisEnv(str(trained_workspace), segment_codes=6), seed=3, steps=50)
    b = rollout(GestureSynthesisEnv(str(trained_workspace), segment_codes=6), seed=3, steps=50)
    assert len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    c = rollout(GestureSynthesisEnv(str(trained_workspace), segment_codes=6), seed=4, steps=50)
    assert not all(same(x, y) for x, y in zip(a, c))


def test_pickle_round_trip_continues_identically(env):
    env.reset(seed=0)
    for a in (1, 2):
        env.step(a)
    twin = pickle.loads(pickle.dumps(env))
    for a in (3, 4, 5, 6):
        r1, r2 = env.step(a), twin.step(a)
        assert all(same(x, y) for x, y in zip(r1[:4], r2[:4]))
    assert same(env.reset()[0], twin.reset()[0])  # the random generator travelled too


def test_errors_are_clear(env):
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    for bad in (-1, env.action_space.n, 1.5, "3", [1, 2]):
        with pytest.raises(ValueError, match=r"action must be an integer code index in \[0, 16\)"):
            env.step(bad)
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"clip_id": "x"})
    with pytest.raises(ValueError, match="no clip"):
        env.reset(options={"clip": "nobody/none"})
    for _ in range(6):
        *_, terminated, _, _ = env.step(0)
    assert terminated
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step(0)


def test_reset_options_pick_clip_and_start_and_episode_structure(env, trained_workspace):
    clip_id = env.unwrapped.data.split_ids("valid")[0]
    obs, _ = env.reset(options={"clip": clip_id, "start": 2})
    clip = env.data.clip(clip_id)
    n = env.action_space.n
    assert obs["codes"].tolist() == [n] * 7 + [clip.codes[2]]  # a_0 = ground truth of the start step
    np.testing.assert_array_equal(obs["audio"][:4], clip.audio_obs[0:4])  # steps 0..3 around step 3
    with pytest.raises(ValueError, match="out of range"):
        env.reset(options={"clip": clip_id, "start": clip.n_codes - 2})
    scorer = RewardScorer.from_workspace(trained_workspace)
    rewards = []
    for t in range(6):
        obs, r, terminated, truncated, _ = env.step(int(clip.codes[3 + t]))
        rewards.append(r)
        assert terminated == (t == 5) and not truncated
    # the last reward scores the last 4 codes against the audio of their frames
    expected = scorer.rewards(clip.codes[None, 5:9], clip.audio[None, 40:72])
    assert rewards[-1] == pytest.approx(float(expected[0]), abs=1e-5)
    whole = GestureSynthesisEnv(str(trained_workspace), segment_codes=None, split="test")
    whole.reset(options={"clip": clip_id})
    steps = 0
    terminated = False
    while not terminated:
        *_, terminated, _, _ = whole.step(0)
        steps += 1
    assert steps == clip.n_codes - 1


def test_render_draws_the_decoded_pose(trained_workspace):
    env = GestureSynthesisEnv(str(trained_workspace), render_mode="rgb_array", segment_codes=6)
    env.reset(seed=0)
    img = env.render()
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    assert (img != img[0, 0]).any(axis=-1).sum() > 100  # a figure was drawn


def test_registration_make_and_json_spec(trained_workspace):
    assert set(racer_env.ENV_IDS) <= set(gym.registry)
    env = gym.make("racer/GestureSynthesis-v0", workspace=str(trained_workspace))
    spec = json.loads(env.spec.to_json())
    assert spec["kwargs"] == {"split": "train", "segment_codes": 15, "workspace": str(trained_workspace)}
    assert gym.spec("racer/GestureSynthesis-v0").vector_entry_point.endswith(":GestureSynthesisVectorEnv")
    venv = gym.make_vec("racer/GestureSynthesis-v0", num_envs=3, vectorization_mode="vector_entry_point",
                        workspace=str(trained_workspace))
    assert isinstance(venv.unwrapped, GestureSynthesisVectorEnv) and venv.observation_space["codes"].shape == (3, 8)


def test_native_vector_env_equals_sync_vector_env(trained_workspace):
    kwargs = {"workspace": str(trained_workspace), "segment_codes": 4}
    native = GestureSynthesisVectorEnv(num_envs=5, **kwargs)
    sync = gym.vector.SyncVectorEnv([lambda: GestureSynthesisEnv(**kwargs) for _ in range(5)])
    o1, _ = native.reset(seed=11)
    o2, _ = sync.reset(seed=11)
    assert same(o1, o2)
    rng = np.random.default_rng(0)
    autoresets = 0
    for _ in range(30):
        actions = rng.integers(0, native.single_action_space.n, 5)
        s1, s2 = native.step(actions), sync.step(actions)
        for x, y in zip(s1[:4], s2[:4]):
            if isinstance(x, dict):
                assert same(x, y)
            else:
                np.testing.assert_allclose(x, y, atol=1e-6)
        autoresets += int(s1[2].sum())
    assert autoresets >= 10  # episodes of 4 steps: every sub-env went through several autoresets
