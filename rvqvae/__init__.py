"""rvqvae: robust vector-quantized generative models and fast nearest-codeword search.

The methods library of rvqvae-bench. It knows nothing about scenarios, files or metrics:
import models from :mod:`rvqvae.models` and quantizer kernels from :mod:`rvqvae.quantize`.
"""

from rvqvae.errors import UserError
from rvqvae.registry import Registry

__version__ = "0.1.0"
__all__ = ["Registry", "UserError", "__version__"]
