"""Models: an observation is operator(sum of K components); each component is a learned
generator with a latent prior or a known structured-signal sampler. The same objects serve
training (fake observations for the discriminator) and inference (fitting latents)."""
