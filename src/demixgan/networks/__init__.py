"""Networks: the paper's generators and discriminators (DCGAN- and InfoGAN-style), by name."""
