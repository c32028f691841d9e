"""Batched evaluation rollouts (``rollout_clips``) give what the one-by-one, step-by-step rollout gives: the same codes
exactly, and mean rewards equal to float rounding (a batch of reward windows rounds otherwise than one window).

The clips are cut to different lengths (so that episodes leave a lock-step batch at different steps) and are
longer than the tiny GPT's context (so that the key/value cache slides, re-primed from the newest steps)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from racer_agents.agent import Agent, D3rlpyAgent, GPTAgent, load_agent
from racer_agents.evaluate import rollout_clips
from racer_agents.retrieval import NearestNeighbourAgent
from racer_env.envs.episode_data import EnvData, load_env_data

#: |batched - one-by-one| mean reward of a clip: float32 rewards of windows scored in a batch vs one at a time
REWARD_TOLERANCE = 1e-6


class _CutClips:
    """The workspace's EnvData with each clip cut to a given number of code steps (episodes of different lengths)."""

    def __init__(self, data: EnvData, lengths: dict[str, int]) -> None:
        self._data, self._lengths = data, lengths

    def __getattr__(self, name: str):
        return getattr(self._data, name)

    def clip(self, clip_id: str):
        clip, n = self._data.clip(clip_id), self._lengths[clip_id]
        fpc = self._data.frames_per_code
        return dataclasses.replace(clip, codes=clip.codes[:n], audio=clip.audio[:n * fpc], audio_obs=clip.audio_obs[:n],
                                   positions=None if clip.positions is None else clip.positions[:n * fpc])


def _env(workspace, reward: str = "contrastive") -> tuple[SimpleNamespace, list[str]]:
    """An environment stand-in (what rollout_clips reads: data and reward) over every clip of the tiny corpus, cut to
    lengths from 2 code steps to whole (25): past the context of 15 steps and its slide, and shorter."""
    data = load_env_data(str(workspace))
    ids = list(data.clips)
    full = min(data.clip(c).n_codes for c in ids)
    lengths = [full, 2, 16, full, 9, 23][:len(ids)]
    assert full > 15 + 15 // 2, "the clips must be long enough for the GPT's cache to slide twice"
    return SimpleNamespace(data=_CutClips(data, dict(zip(ids, lengths))), reward=reward), ids


def _assert_same(one_by_one: list, batched: list) -> None:
    """The same codes exactly, mean rewards within REWARD_TOLERANCE, clip by clip."""
    assert len(one_by_one) == len(batched)
    for (codes, reward), (b_codes, b_reward) in zip(one_by_one, batched):
        np.testing.assert_array_equal(b_codes, codes)
        assert abs(b_reward - reward) <= REWARD_TOLERANCE, (b_reward, reward)


@pytest.mark.parametrize("reward", ["contrastive", "distance"])
def test_batched_rollouts_equal_one_by_one(agent_workspace, reward):
    """GPT agents (racer-cql, bc: lock-step), the nearest-neighbour lookup (lock-step) and a d3rlpy agent (codes one
    clip at a time, rewards batched)."""
    env, ids = _env(agent_workspace, reward)
    agents = [load_agent(agent_workspace, n) for n in ("racer-cql", "bc", "d3rlpy-DiscreteBC")]
    agents.append(NearestNeighbourAgent(load_env_data(str(agent_workspace))))
    assert [a.batched for a in agents] == [True, True, False, True]
    assert not any(a.reads_reward for a in agents)
    for agent in agents:
        _assert_same(rollout_clips(env, agent, ids, batched=False), rollout_clips(env, agent, ids))


def test_lockstep_gpt_outputs_are_bit_for_bit_one_episodes(agent_workspace):
    """Stronger than equal codes: every output of a lock-step GPT step (and after each cache slide) is exactly the
    one-episode output."""
    agent = load_agent(agent_workspace, "bc")
    assert isinstance(agent, GPTAgent)
    torch.manual_seed(0)
    n, steps, dim = 5, 2 * agent.model.cfg.max_steps + 3, agent.model.cfg.audio_dim
    audio, prev = torch.randn(steps, n, dim), torch.randint(0, agent.n_codes, (steps, n))
    agent.reset_batch(n)
    batched = []
    for t in range(steps):
        batched.append(agent.step_q_batch(audio[t], prev[t]))  # (n, N)
    for b in range(n):
        agent.reset()
        alone = torch.stack([agent.step_q(audio[t, b], prev[t, b]) for t in range(steps)])  # (steps, N)
        assert torch.equal(torch.stack([out[b] for out in batched]), alone), f"episode {b}"


def test_nearest_neighbour_near_ties_are_decided_by_act(agent_workspace):
    """Duplicate keys with other codes tie exactly: the batched lookup must hand such a query to act (which keeps
    the first), not choose by its own rounding."""
    data = load_env_data(str(agent_workspace))
    agent = NearestNeighbourAgent(data)
    agent.keys = torch.cat([agent.keys, agent.keys])
    agent.key_norms = (agent.keys ** 2).sum(1)
    agent.values = np.concatenate([agent.values, (agent.values + 1) % agent.n_codes])
    env, ids = _env(agent_workspace)
    one_by_one = rollout_clips(env, agent, ids, batched=False)
    asked, act = [], agent.act
    agent.act = lambda observation: asked.append(1) or act(observation)  # (counts act's calls)
    _assert_same(one_by_one, rollout_clips(env, agent, ids))
    assert len(asked) == sum(len(codes) - 1 for codes, _ in one_by_one)  # every query tied: each went to act


def test_an_agent_that_reads_the_reward_gets_each_one_before_its_next_choice(agent_workspace):
    """A subclass overriding observe_reward reads the reward (unless it says otherwise): rollout_clips keeps its
    step-by-step path, each reward handed over before the next act, in step order."""

    class Recorder(Agent):
        def __init__(self, n_codes: int) -> None:
            self.n_codes, self.seen, self.rewards = n_codes, [], []

        def act(self, observation: dict) -> int:
            self.seen.append(len(self.rewards))  # rewards received before this choice
            return int(abs(float(observation["audio"].sum()) * 1000) + 7 * int(observation["codes"].sum())) % self.n_codes

        def observe_reward(self, reward: float) -> None:
            self.rewards.append(reward)

    class Ignores(Recorder):
        reads_reward = False

    env, ids = _env(agent_workspace)
    agent = Recorder(env.data.n_codes)
    assert agent.reads_reward and not Ignores(2).reads_reward
    out = rollout_clips(env, agent, ids)
    steps = sum(len(codes) - 1 for codes, _ in out)
    assert agent.seen == list(range(steps)) and len(agent.rewards) == steps  # every reward before the next choice
    means = [float(np.mean(agent.rewards[a:b])) for a, b in _bounds([len(c) - 1 for c, _ in out])]
    assert means == [m for _, m in out]
    _assert_same(rollout_clips(env, Recorder(env.data.n_codes), ids, batched=False), out)
    ignoring = Ignores(env.data.n_codes)
    _assert_same(out, rollout_clips(env, ignoring, ids))
    assert ignoring.rewards == []  # not read: not handed over


def _bounds(lengths: list[int]) -> list[tuple[int, int]]:
    ends = np.cumsum(lengths)
    return list(zip(ends - lengths, ends))


def test_reads_reward_of_d3rlpy_and_users_agents(agent_workspace):
    from racer_agents.benchmark import UserAgent

    agent = load_agent(agent_workspace, "d3rlpy-DiscreteBC")
    assert isinstance(agent, D3rlpyAgent) and not agent.reads_reward
    agent.algo = type("DiscreteDecisionTransformer", (), {})()  # (only the name is read)
    assert agent.reads_reward

    class Plain:
        def act(self, observation):
            return 0

    class Listens(Plain):
        def observe_reward(self, reward):
            pass

    class Says(Listens):
        reads_reward = False

    assert [UserAgent(c(), "u", 4).reads_reward for c in (Plain, Listens, Says)] == [False, True, False]
    assert not UserAgent(Plain(), "u", 4).batched


def test_gpt_lockstep_only_where_its_products_are_exact(agent_workspace, monkeypatch):
    """The lock-step GPT path is taken only where this machine's per-episode products are checked exact; where the
    check fails the clips are rolled out one at a time (same codes), not in lock-step with other roundings."""
    import racer_agents.agent as agent_module
    from racer_agents.gpt import per_episode_step_is_exact, whole_batch_linear

    agent = load_agent(agent_workspace, "racer-cql")
    assert per_episode_step_is_exact(agent.model) and agent.batched
    monkeypatch.setattr(agent_module, "per_episode_step_is_exact", lambda model: False)
    refused = load_agent(agent_workspace, "racer-cql")
    assert not refused.batched
    env, ids = _env(agent_workspace)
    _assert_same(rollout_clips(env, agent, ids), rollout_clips(env, refused, ids))
    monkeypatch.setattr("racer_agents.gpt.per_episode_linear",  # products off in the last bit: the check sees it
                        lambda layer, x: whole_batch_linear(layer, x) * (1.0 + 2.0 ** -20))
    assert not per_episode_step_is_exact(agent.model)
