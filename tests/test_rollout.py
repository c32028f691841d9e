"""One rollout without an environment (generation, policy datasets) sees what the environment shows, and every
agent carries the observation settings it was trained with."""

from __future__ import annotations

import numpy as np

from racer_agents.agent import Agent, load_agent
from racer_env.envs.episode_data import ObservationConfig, load_env_data, rollout_codes
from racer_env.envs.gesture import GestureSynthesisEnv


def _policy(n_codes: int):
    """A deterministic policy of the whole observation (any change in what it is shown changes its codes)."""
    return lambda obs: int(abs(float(obs["audio"].sum()) * 1000) + int(obs["codes"].sum()) * 7) % n_codes


def test_rollout_codes_match_an_environment_rollout(trained_workspace):
    cfg = ObservationConfig(past=1, lookahead=1, history=3)
    env = GestureSynthesisEnv(str(trained_workspace), split="train", segment_codes=None, past=cfg.past,
                              lookahead=cfg.lookahead, history=cfg.history)
    data = load_env_data(str(trained_workspace))
    clip_id = data.split_ids("train")[0]
    policy = _policy(env.n_codes)
    obs, _ = env.reset(options={"clip": clip_id, "start": 2})
    stepped, done = [], False
    while not done:
        stepped.append(policy(obs))
        obs, _, terminated, truncated, _ = env.step(stepped[-1])
        done = terminated or truncated
    clip = data.clips[clip_id]
    codes = rollout_codes(policy, clip, 2, len(stepped), int(clip.codes[2]), cfg, data.n_codes)
    np.testing.assert_array_equal(codes, stepped)


def test_every_agent_implements_the_protocol(agent_workspace):
    for name in ("racer-cql", "bc", "d3rlpy-DiscreteBC"):
        agent = load_agent(agent_workspace, name)
        assert isinstance(agent, Agent) and isinstance(agent.obs_cfg, ObservationConfig)
        agent.reset()
        agent.observe_reward(0.5)  # a no-op except for decision transformers


def test_one_frozen_config_for_both_environments(trained_workspace):
    import pickle

    import pytest

    from racer_env.envs.episode_data import EnvConfig
    from racer_env.envs.vector import GestureSynthesisVectorEnv
    from racer_env.errors import RacerError

    env = GestureSynthesisEnv(str(trained_workspace), segment_codes=4, render_mode="rgb_array")
    vec = GestureSynthesisVectorEnv(2, str(trained_workspace), segment_codes=4, render_mode="rgb_array")
    assert env.config == EnvConfig(str(trained_workspace), segment_codes=4, render_mode="rgb_array") == vec.config
    assert pickle.loads(pickle.dumps(env.config)) == env.config
    vec.reset(seed=0)
    env.reset(seed=0)
    assert all(image.shape == env.render().shape for image in vec.render())
    for bad in ({"reward": "nonsense"}, {"render_mode": "human"}, {"segment_codes": 0}, {"history": 0}):
        with pytest.raises(RacerError):
            GestureSynthesisVectorEnv(2, str(trained_workspace), **bad)


def test_evaluation_rollout_is_the_environment_rollout(agent_workspace):
    """racer evaluate scores each step as the environment does and hands the reward to the agent in step order."""
    from racer_agents.evaluate import rollout_clip

    class Recorder(Agent):
        def __init__(self, n_codes: int) -> None:
            self.n_codes, self.seen, self.rewards = n_codes, [], []

        def act(self, observation: dict) -> int:
            self.seen.append(len(self.rewards))  # rewards received before this choice
            return _policy(self.n_codes)(observation)

        def observe_reward(self, reward: float) -> None:
            self.rewards.append(reward)

    env = GestureSynthesisEnv(str(agent_workspace), split="test", segment_codes=None)
    clip_id = env.data.split_ids("test")[0]
    agent = Recorder(env.n_codes)
    codes, mean = rollout_clip(env, agent, clip_id)
    obs, _ = env.reset(options={"clip": clip_id})
    stepped, rewards, done = [int(obs["codes"][-1])], [], False
    while not done:
        stepped.append(_policy(env.n_codes)(obs))
        obs, reward, terminated, truncated, _ = env.step(stepped[-1])
        rewards.append(reward)
        done = terminated or truncated
    np.testing.assert_array_equal(codes, stepped)
    np.testing.assert_allclose(agent.rewards, rewards)
    assert mean == float(np.mean(rewards)) and agent.seen == list(range(len(rewards)))
