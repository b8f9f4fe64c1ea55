"""Support package of the physical-plausibility course: every notebook cell that does work calls it."""

import logging
import warnings

# Two messages from cosmos-rl's dependencies that a learner can neither act on nor needs, shown
# in the notebooks' output: torch warns on import that pynvml is deprecated, and torch's pytree
# logs that torchao registers its enums the old way. The notebooks show no warnings otherwise.
warnings.filterwarnings(
    "ignore", message="The pynvml package is deprecated", category=FutureWarning
)
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)

__version__ = "0.1.0"
