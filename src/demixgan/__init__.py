"""demixgan: learn generative models of structured signals from their superpositions.

An observation is the sum of K components passed through a measurement operator;
each component is either a learned generator with a latent prior or a known sampler.
Submodules are imported lazily so that ``import demixgan`` stays fast.
"""

from demixgan.errors import DemixganError

__version__ = "0.1.0"
__all__ = ["DemixganError", "__version__", "load"]


def load(path, device="cpu"):
    """Load a trained checkpoint or run directory for inference: ``load(p).demix(y)``; its
    latent fits run on ``device`` (cpu, cuda, cuda:N or auto), inputs and results on the CPU.

    Returns a :class:`demixgan.inference.api.TrainedModel` (imported here, on first use, so that
    ``import demixgan`` does not import torch).
    """
    from demixgan.inference.api import load as load_trained

    return load_trained(path, device)
