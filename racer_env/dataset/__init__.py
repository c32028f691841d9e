"""The offline dataset of the gesture MDP: episode generation, augmentation, labelling, Minari storage."""
