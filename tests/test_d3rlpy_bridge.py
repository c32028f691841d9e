"""d3rlpy on the gesture MDP: aligned conversion, the registered encoder, and every discrete algorithm."""

import d3rlpy
import numpy as np
import pytest
from d3rlpy.logging import NoopAdapterFactory

from racer_agents.d3rlpy_bridge import (
    DISCRETE_ALGORITHMS,
    GestureEncoderFactory,
    algo_config,
    minari_to_mdp_dataset,
)
from racer_env.envs.gesture import GestureSynthesisEnv
from racer_env.envs.wrappers import DictToTupleObservation


def test_converted_observations_line_up_with_their_actions(gesture_dataset):
    dataset, _ = gesture_dataset
    mdp = minari_to_mdp_dataset(dataset)
    episodes = list(dataset.iterate_episodes())
    assert len(mdp.episodes) == len(episodes)
    for ours, theirs in zip(mdp.episodes, episodes):
        steps = len(theirs.actions)
        np.testing.assert_array_equal(ours.observations[0], theirs.observations["audio"][:steps])
        np.testing.assert_array_equal(ours.observations[1], theirs.observations["codes"][:steps])
        np.testing.assert_array_equal(ours.actions.ravel(), theirs.actions)
        np.testing.assert_allclose(ours.rewards.ravel(), theirs.rewards, rtol=1e-6)
        assert ours.terminated  # terminal at the segment end, not a timeout


def test_wrapper_turns_dict_into_tuple(trained_workspace):
    env = DictToTupleObservation(GestureSynthesisEnv(str(trained_workspace), segment_codes=6))
    obs, _ = env.reset(seed=0)
    cfg = env.unwrapped.config.obs_cfg
    assert isinstance(obs, tuple) and obs[0].shape == (cfg.context, 8, 66) and obs[1].shape == (cfg.history,)
    assert env.observation_space.contains(obs)


def rollout(algo, env, name: str) -> float:
    obs, _ = env.reset(seed=0)
    total, reward, done = 0.0, 0.0, False
    actor = (algo.as_stateful_wrapper(target_return=5.0, action_sampler=d3rlpy.algos.GreedyTransformerActionSampler())
             if name == "DiscreteDecisionTransformer" else None)
    while not done:
        if actor is not None:
            action = actor.predict(obs, reward)
        else:
            action = algo.predict([obs[0][None], obs[1][None]])[0]
        obs, reward, terminated, truncated, _ = env.step(int(action))
        total += reward
        done = terminated or truncated
    return total


@pytest.mark.parametrize("name", DISCRETE_ALGORITHMS)
def test_every_discrete_algorithm_trains_and_rolls_out(gesture_dataset, trained_workspace, name):
    dataset, _ = gesture_dataset
    mdp = minari_to_mdp_dataset(dataset)
    encoder = GestureEncoderFactory(n_codes=16, embed_dim=4, hidden=8, feature_size=16)
    extra = {"context_size": 6, "num_heads": 2, "num_layers": 1} if name == "DiscreteDecisionTransformer" else {}
    algo = algo_config(name, encoder, max_timestep=16, batch_size=8, **extra).create(device="cpu:0")
    algo.fit(mdp, n_steps=3, n_steps_per_epoch=3, show_progress=False, save_interval=10**9,
             experiment_name=f"test_{name}", with_timestamp=False, logger_adapter=NoopAdapterFactory())
    env = DictToTupleObservation(GestureSynthesisEnv(str(trained_workspace), segment_codes=6))
    assert np.isfinite(rollout(algo, env, name))


def test_saved_algorithm_round_trips_through_load_learnable(gesture_dataset, tmp_path):
    dataset, _ = gesture_dataset
    mdp = minari_to_mdp_dataset(dataset)
    algo = algo_config("DiscreteCQL", GestureEncoderFactory(n_codes=16, feature_size=16),
                       batch_size=8).create(device="cpu:0")
    algo.fit(mdp, n_steps=2, n_steps_per_epoch=2, show_progress=False, save_interval=10**9,
             experiment_name="roundtrip", with_timestamp=False, logger_adapter=NoopAdapterFactory())
    algo.save(str(tmp_path / "cql.d3"))
    loaded = d3rlpy.load_learnable(str(tmp_path / "cql.d3"))
    batch = [mdp.episodes[0].observations[0], mdp.episodes[0].observations[1]]
    np.testing.assert_array_equal(algo.predict(batch), loaded.predict(batch))
    assert loaded.config.encoder_factory.get_type() == "racer_gesture"


def test_unknown_algorithm_suggests_a_name():
    with pytest.raises(ValueError, match="did you mean 'DiscreteCQL'"):
        algo_config("DiscretCQL", GestureEncoderFactory())
