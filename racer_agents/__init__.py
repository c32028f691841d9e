"""racer_agents: agents that act in the RACER gesture MDP (GPT backbone, discrete CQL, baselines, d3rlpy bridge).

The agents arrive with the environment and dataset stages; this package is installed alongside
``racer_env`` so that its import path is stable from the first release.
"""

__version__ = "0.1.0"
