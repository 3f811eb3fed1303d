"""Files: atomic writes and image (PNG / .npy) input and output."""
