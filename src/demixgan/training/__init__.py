"""Training: one loop for vanilla GAN, denoising-GAN and demixing-GAN, runs, checkpoints."""
