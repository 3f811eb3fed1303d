"""Specs below training and inference: the image spec, run configs, their validation and the
model factory."""
