"""The names of the algorithms racer trains, checked before any work (and before d3rlpy, which prints a warning of
gym's when it is imported, is loaded: a refused name is one line)."""

from __future__ import annotations

from racer_env.errors import RacerError

#: the discrete algorithms of d3rlpy that work on the gesture MDP, by config class name prefix.
D3RLPY_ALGORITHMS = ("DiscreteCQL", "DQN", "DoubleDQN", "NFQ", "DiscreteBCQ", "DiscreteBC", "DiscreteSAC",
                     "DiscreteDecisionTransformer")


def check_d3rlpy_algorithm(name: str) -> str:
    """``name`` if it is one of :data:`D3RLPY_ALGORITHMS`; else a RacerError with the nearest name."""
    if name not in D3RLPY_ALGORITHMS:
        import difflib

        hint = difflib.get_close_matches(name, D3RLPY_ALGORITHMS, n=1)
        raise RacerError(f"unknown d3rlpy discrete algorithm {name!r}"
                         f"{f'; did you mean {hint[0]!r}' if hint else ''}; choose one of {D3RLPY_ALGORITHMS}")
    return name
