"""The paper's Table 2 ablations as agents: online DQN, online actor-critic, and the distance reward."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import racer_env  # noqa: F401  (registers the environments)
from racer_agents.agent import load_agent
from racer_agents.cli import main as racer
from racer_agents.gpt import GestureGPT, GPTConfig
from racer_agents.online import ActorCriticGPT, gae, online_config_for, train_online
from tests.conftest import copy_workspace


@pytest.fixture(scope="module")
def online_workspace(trained_workspace, tmp_path_factory):
    """``trained_workspace`` with tiny dqn and actor-critic agents trained through the command line."""
    ws = copy_workspace(trained_workspace, tmp_path_factory.mktemp("online") / "W")
    for algo in ("dqn", "actor-critic"):
        assert racer(["train", "agent", str(ws), "--algo", algo, "--preset", "tiny", "--quiet"]) == 0
    return ws


@pytest.mark.parametrize("algo", ["dqn", "actor-critic"])
def test_online_agents_log_and_share_the_agent_interface(online_workspace, algo):
    rows = [json.loads(line) for line in (online_workspace / "agents" / algo / "metrics.jsonl").read_text().splitlines()]
    assert all("episode/return" in r and "env_steps" in r for r in rows)
    evals = [r for r in rows if "eval/return" in r]
    assert len(evals) == 2 and all(0 <= r["eval/pmb_pct"] <= 100 for r in evals)
    agent = load_agent(online_workspace, algo)
    env = gym.make("racer/GestureSynthesisClip-v0", workspace=str(online_workspace))
    obs, _ = env.reset(seed=0)
    agent.reset()
    obs, reward, _terminated, _truncated, _ = env.step(agent.act(obs))
    assert -1 <= reward <= 1


def test_online_agents_evaluate_and_generate(online_workspace, tmp_path):
    from racer_agents.evaluate import evaluate
    from racer_agents.generate import generate

    result = evaluate(online_workspace, ["dqn", "actor-critic"], split="test", progress=False)
    assert {"dqn", "actor-critic"} <= set(result["systems"])
    y = np.random.default_rng(0).normal(0, 0.1, 16000 * 2).astype(np.float32)
    out = generate(online_workspace, y, sample_rate=16000, agent="actor-critic", formats=(), progress=False)
    assert out.codes.shape == (5,)


@pytest.mark.parametrize("algo", ["dqn", "actor-critic"])
def test_online_resume_equals_uninterrupted(trained_workspace, tmp_path, algo):
    cfg = online_config_for("tiny", algo=algo)
    full = copy_workspace(trained_workspace, tmp_path / "full")
    train_online(full, cfg, progress=False)
    cut = copy_workspace(trained_workspace, tmp_path / "cut")
    assert train_online(cut, cfg, progress=False, stop_after=3)["stopped_at"] == 3
    train_online(cut, cfg, progress=False, resume=True)
    from racer_env.checkpoint import load_checkpoint

    a, b = (load_checkpoint(w / "agents" / algo / "model.pt", "agent")[1]["model"] for w in (full, cut))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert train_online(cut, cfg, progress=False)["skipped"]


def test_actor_critic_split_of_the_gpt():
    cfg = GPTConfig(n_codes=8, audio_dim=4, max_steps=5, n_embd=16, n_head=2, n_layer=4, dropout=0.0)
    net = ActorCriticGPT(cfg, actor_layers=3, critic_layers=3)
    assert isinstance(net.actor, GestureGPT) and net.shared == 1 and len(net.critic) == 3
    audio, prev = torch.randn(2, 5, 4), torch.randint(0, 8, (2, 5))
    logits, values = net(audio, prev)
    assert logits.shape == (2, 5, 8) and values.shape == (2, 5)
    assert torch.allclose(logits, net.actor(audio, prev), atol=1e-6)  # the actor is the saved GPT agent
    values.sum().backward()  # the critic's loss reaches the shared layer but not the actor's own layers
    assert net.actor.blocks[0].mlp[0].weight.grad is not None
    assert all(p.grad is None for b in net.actor.blocks[1:] for p in b.parameters())
    assert net.actor.head.weight.grad is None


def test_gae_known_answer():
    rewards = torch.tensor([[1.0, 1.0]])
    dones = torch.tensor([[0.0, 1.0]])
    values = torch.zeros(1, 2)
    adv, ret = gae(rewards, values, dones, gamma=0.5, lam=1.0)
    assert torch.allclose(ret, torch.tensor([[1.5, 1.0]]))  # discounted returns when values are 0
    adv, ret = gae(rewards, torch.tensor([[1.0, 2.0]]), dones, gamma=1.0, lam=0.0)
    assert torch.allclose(adv, torch.tensor([[1.0 + 2.0 - 1.0, 1.0 - 2.0]]))  # one-step TD errors


def test_online_config_checks():
    with pytest.raises(ValueError, match="online --algo"):
        online_config_for("tiny", algo="racer-cql")
    with pytest.raises(ValueError, match="reward must be"):
        online_config_for("tiny", algo="dqn", reward="euclid")


# -- the distance reward -------------------------------------------------------------------------------------------
def test_distance_reward_known_answer(trained_workspace):
    """0 when the decoded pose is the truth; -1 when the truth is 10 cm away from it at every joint."""
    from racer_env.reward.windows import decode_windows

    env = gym.make("racer/GestureSynthesisDistance-v0", workspace=str(trained_workspace)).unwrapped
    assert env.reward == "distance"
    data = env.data
    codes = next(iter(data.clips.values())).codes[:4]
    motion = decode_windows(data.scorer.vqvae, torch.from_numpy(codes)[None])[0, -8:].numpy()  # (8, J*3)
    decoded = data._positions(data.stats.denormalise_motion(motion).reshape(8, -1, 3))  # (8, J, 3) mm
    offset = np.zeros(3, dtype=np.float32)
    offset[0] = 100.0
    rewards = data.rewards([(codes, decoded), (codes, decoded + offset)], "distance")
    np.testing.assert_allclose(rewards, [0.0, -1.0], atol=1e-4)
    # the environment scores the newest code against the clip's true motion of the same frames
    clip = next(iter(data.clips.values()))
    env.reset(options={"clip": clip.clip_id, "start": 0})
    reward = env.step(int(clip.codes[1]))[1]
    truth = clip.positions[8:16]
    assert reward == pytest.approx(float(data.rewards([(clip.codes[:2], truth)], "distance")[0]), abs=1e-6)
    assert reward < 0


def test_distance_vector_env_matches_single(trained_workspace):
    single = gym.make("racer/GestureSynthesisDistance-v0", workspace=str(trained_workspace))
    vec = gym.make_vec("racer/GestureSynthesisDistance-v0", num_envs=3, vectorization_mode="vector_entry_point",
                       workspace=str(trained_workspace))
    vec.reset(seed=5)
    single.reset(seed=6)  # sub-env 1 is seeded with 5 + 1
    for t in range(4):
        actions = np.array([t, t + 1, t + 2])
        _, rewards, _, _, _ = vec.step(actions)
        _, reward, _, _, _ = single.step(int(actions[1]))
        assert rewards[1] == pytest.approx(reward, abs=1e-6)


def test_distance_dataset_and_racer_cql_on_it(trained_workspace, tmp_path):
    import minari

    from racer_agents.train import agent_config_for, train_agent
    from racer_env.dataset.builder import build_dataset
    from racer_env.dataset.episodes import AugmentConfig

    ws = copy_workspace(trained_workspace, tmp_path / "W")
    result = build_dataset(ws, config=AugmentConfig(segment_codes=6, stride=6, augment=1), progress=False,
                           reward="distance")
    assert result["id"].endswith("/augmented_distance-v0")
    dataset = minari.load_dataset(result["id"])
    assert dataset.storage.metadata["racer_reward"] == "distance"
    env = dataset.recover_environment()
    assert env.spec.id == "racer/GestureSynthesisDistance-v0"
    episode = next(dataset.iterate_episodes())
    opts = next(iter(dataset.storage.get_episode_metadata([episode.id])))["options"]
    env.reset(options={"clip": str(opts["clip"]), "start": int(opts["start"])})
    rewards = [env.step(int(a))[1] for a in episode.actions]
    np.testing.assert_allclose(rewards, episode.rewards, atol=1e-5)
    assert train_agent(ws, agent_config_for("tiny", algo="racer-cql", dataset=result["id"]), progress=False)["model"]
