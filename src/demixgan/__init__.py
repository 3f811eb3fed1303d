"""demixgan: learn generative models of structured signals from their superpositions.

An observation is the sum of K components passed through a measurement operator;
each component is either a learned generator with a latent prior or a known sampler.
Submodules are imported lazily so that ``import demixgan`` stays fast.
"""

from demixgan.errors import DemixganError

__version__ = "0.1.0"
__all__ = ["DemixganError", "__version__"]
