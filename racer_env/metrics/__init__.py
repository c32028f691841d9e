"""Evaluation metrics of generated gestures: errors against the ground truth, beat alignment, FGD, diversity."""
