"""Data: image sources (MNIST, Fashion-MNIST, folders), structured signal families and
superposition recipes that build mixtures y = x + n together with their true components."""
