"""racer_agents: agents that act in the RACER gesture MDP (GPT backbone, discrete CQL, baselines, d3rlpy bridge),
their training, evaluation and generation, ``racer demo``, and the ``racer`` command line (:mod:`racer_agents.cli`),
which sits above both packages.
"""

__version__ = "0.1.0"
