"""The GPT backbone, the RACER discrete CQL loss, agent training and the one agent interface."""

import numpy as np
import pytest
import torch

from racer_agents.agent import D3rlpyAgent, GPTAgent, RandomAgent, load_agent
from racer_agents.gpt import GPT_PRESETS, GestureGPT, GPTConfig, block_mask
from racer_agents.losses import behaviour_cloning_loss, discrete_cql_loss
from racer_agents.train import agent_config_for, train_agent
from racer_env.checkpoint import CheckpointError, load_checkpoint
from racer_env.envs.gesture import GestureSynthesisEnv
from racer_env.vqvae.train import train_config_for, train_vqvae
from tests.conftest import copy_workspace

CFG = GPTConfig(n_codes=16, audio_dim=12, max_steps=8, n_embd=32, n_head=2, n_layer=2, dropout=0.0)


def test_block_mask_is_the_2x2_repeated_lower_triangle():
    tri = torch.tril(torch.ones(3, 3, dtype=torch.bool))
    assert torch.equal(block_mask(3), torch.cat([torch.cat([tri, tri], 1), torch.cat([tri, tri], 1)], 0))


def test_output_at_step_t_sees_only_audio_up_to_t_and_codes_before_t():
    torch.manual_seed(0)
    model = GestureGPT(CFG).eval()
    audio, prev = torch.randn(1, 8, 12), torch.randint(0, 17, (1, 8))
    base = model(audio, prev)
    for t in range(7):
        a2, p2 = audio.clone(), prev.clone()
        a2[:, t + 1:] = torch.randn_like(a2[:, t + 1:])  # future audio
        p2[:, t + 1:] = (p2[:, t + 1:] + 3) % 17  # codes chosen at step t and later
        out = model(a2, p2)
        torch.testing.assert_close(out[:, :t + 1], base[:, :t + 1])
        assert not torch.allclose(out[:, t + 1:], base[:, t + 1:])
    a3 = audio.clone()
    a3[:, 4] += 1.0  # audio of step 4 changes step 4 itself
    assert not torch.allclose(model(a3, prev)[:, 4], base[:, 4])


def test_kv_cache_equals_full_forward_and_presets():
    torch.manual_seed(0)
    model = GestureGPT(CFG).eval()
    audio, prev = torch.randn(2, 8, 12), torch.randint(0, 17, (2, 8))
    caches = [{} for _ in model.blocks]
    steps = torch.stack([model.step(audio[:, t], prev[:, t], caches, t) for t in range(8)], 1)
    torch.testing.assert_close(steps, model(audio, prev), atol=1e-5, rtol=1e-5)
    caches = [{} for _ in model.blocks]  # a prefix in one pass, then steps
    first = model.prefill(audio[:, :5], prev[:, :5], caches)
    rest = torch.stack([model.step(audio[:, t], prev[:, t], caches, t) for t in range(5, 8)], 1)
    torch.testing.assert_close(torch.cat([first, rest], 1), model(audio, prev), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="at most 8 steps"):
        model(torch.randn(1, 9, 12), torch.zeros(1, 9, dtype=torch.long))
    paper = GPT_PRESETS["paper"]
    assert (paper["n_embd"], paper["n_head"], paper["dropout"]) == (768, 12, 0.1)


def test_cql_loss_by_hand():
    q = torch.tensor([[[1.0, 2.0], [3.0, 0.0]]])  # (B=1, T=2, N=2)
    q_target = torch.tensor([[[0.0, 0.0], [2.0, 5.0]]])
    actions, rewards = torch.tensor([[1, 0]]), torch.tensor([[0.5, 1.0]])
    done_at_end = torch.tensor([[0.0, 1.0]])
    lse = np.log(np.exp(1) + np.exp(2)) - 2, np.log(np.exp(3) + 1) - 3
    # max target: y0 = 0.5 + 0.9 * 5 = 5.0, td0 = 0.5 * (2 - 5)^2 = 4.5; y1 = 1.0 (done), td1 = 0.5 * (3 - 1)^2 = 2
    parts = discrete_cql_loss(q, q_target, actions, rewards, done_at_end, gamma=0.9, alpha=2.0, double_q=False)
    assert parts.td.item() == pytest.approx(3.25)
    assert parts.conservative.item() == pytest.approx(np.mean(lse), rel=1e-5)
    assert parts.total.item() == pytest.approx(3.25 + 2.0 * np.mean(lse), rel=1e-5)
    assert parts.q_data.item() == pytest.approx(2.5)
    # double DQN: the online Q chooses a* = argmax [3, 0] = 0, the target values it: y0 = 0.5 + 0.9 * 2 = 2.3
    parts = discrete_cql_loss(q, q_target, actions, rewards, done_at_end, gamma=0.9, alpha=2.0, double_q=True)
    assert parts.td.item() == pytest.approx((0.5 * 0.3**2 + 2.0) / 2)
    # a segment that does not end: its last position has no next state and is left out of the TD term
    parts = discrete_cql_loss(q, q_target, actions, rewards, torch.zeros(1, 2), gamma=0.9, alpha=0.0, double_q=False)
    assert parts.td.item() == pytest.approx(4.5)
    ce = behaviour_cloning_loss(q, actions)
    assert ce.item() == pytest.approx(np.mean(lse), rel=1e-5)  # cross-entropy = logsumexp - logit of the label


def test_racer_cql_resumes_exactly_and_logs_loss_parts(agent_workspace, gesture_dataset, tmp_path):
    cfg = agent_config_for("tiny", algo="racer-cql", dataset=gesture_dataset[0].spec.dataset_id, steps=12)
    a = copy_workspace(agent_workspace, tmp_path / "A")
    b = copy_workspace(agent_workspace, tmp_path / "B")
    first = train_agent(a, cfg, force=True, progress=False)
    train_agent(b, cfg, force=True, progress=False, stop_after=7)
    train_agent(b, cfg, progress=False, resume=True)
    wa = load_checkpoint(a / "agents" / "racer-cql" / "model.pt", "agent")[1]["model"]
    wb = load_checkpoint(b / "agents" / "racer-cql" / "model.pt", "agent")[1]["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert train_agent(a, cfg, progress=False)["skipped"] and first["transitions_per_second"] > 0
    log = (a / "agents" / "racer-cql" / "metrics.jsonl").read_text()
    for key in ("losses/td", "losses/conservative", "q/data", "q/max"):
        assert key in log


def test_one_interface_for_gpt_and_d3rlpy_agents(agent_workspace):
    env = GestureSynthesisEnv(str(agent_workspace), segment_codes=None, split="test")
    for name, kind in (("racer-cql", GPTAgent), ("bc", GPTAgent), ("d3rlpy-DiscreteBC", D3rlpyAgent)):
        agent = load_agent(agent_workspace, name)
        assert isinstance(agent, kind) and agent.n_codes == 16
        agent.reset()
        obs, _ = env.reset(seed=0)
        steps, done = 0, False
        while not done:  # whole test clips are longer than the GPT context: the window slides
            obs, _, done, _, _ = env.step(agent.act(obs))
            steps += 1
        assert steps > 8
        if isinstance(agent, GPTAgent):
            assert agent.position <= agent.model.cfg.max_steps
            assert all(c["k"].shape[2] <= 2 * agent.model.cfg.max_steps for c in agent.caches)
    assert 0 <= RandomAgent(16).act(obs) < 16


def test_gpt_agent_follows_the_full_forward_within_the_context(agent_workspace):
    agent = load_agent(agent_workspace, "racer-cql")
    env = GestureSynthesisEnv(str(agent_workspace), segment_codes=6)
    obs, _ = env.reset(seed=1)
    tokens, prevs, chosen = [], [], []
    for _ in range(6):
        from racer_agents.segments import audio_tokens

        tokens.append(torch.from_numpy(audio_tokens(obs["audio"], agent.obs_cfg)))
        prevs.append(int(obs["codes"][-1]))
        chosen.append(agent.act(obs))
        obs, *_ = env.step(chosen[-1])
    full = agent.model(torch.stack(tokens)[None], torch.tensor([prevs]))[0]
    assert full.argmax(-1).tolist() == chosen


def test_agent_of_another_codebook_is_refused(agent_workspace, tmp_path):
    ws = copy_workspace(agent_workspace, tmp_path / "W")
    train_vqvae(ws, train_config_for("tiny", seed=9), progress=False)
    with pytest.raises(CheckpointError, match="retrain the agent"):
        load_agent(ws, "racer-cql")
    with pytest.raises(ValueError, match="no agent 'nope'"):
        load_agent(agent_workspace, "nope")


def test_bad_algo_names():
    with pytest.raises(ValueError, match="racer-cql, bc, d3rlpy:<Name> \\(offline\\) or dqn, actor-critic"):
        agent_config_for("tiny", algo="ppo")


def test_cached_and_uncached_agents_choose_the_same_codes(agent_workspace):
    model = load_agent(agent_workspace, "racer-cql").model
    from racer_env.envs.episode_data import ObservationConfig

    cached, plain = GPTAgent(model, ObservationConfig()), GPTAgent(model, ObservationConfig(), use_cache=False)
    env = GestureSynthesisEnv(str(agent_workspace), segment_codes=None, split="test")
    obs, _ = env.reset(seed=0)
    done = False
    while not done:  # longer than the context: both slide the same way
        a, b = cached.act(obs), plain.act(obs)
        assert a == b
        obs, _, done, _, _ = env.step(a)
