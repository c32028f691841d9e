"""The gesture MDP: the single Gymnasium environment and its natively batched vector version."""
