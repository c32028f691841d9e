"""Audio loading and per-motion-frame speech features."""
