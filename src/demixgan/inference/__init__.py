"""Inference: recover components from observations by fitting the latents of trained generators."""
