"""Support package of the physical-plausibility course: every notebook cell that does work calls it."""

import logging
import os
import warnings

__version__ = "0.1.0"

# Known third-party noise, quieted in this one place (notebooks import this package before
# torch), so that an executed notebook shows only what the course prints:
# - torch imports the deprecated `pynvml` package (pulled in by cosmos-rl), which warns;
# - torchao registers its enums with torch's pytree, which logs a deprecation line per enum.
warnings.filterwarnings(
    "ignore", message="The pynvml package is deprecated", category=FutureWarning
)
logging.getLogger("torch.utils._pytree").addFilter(
    lambda record: "is an Enum subclass" not in record.getMessage()
)
# `datasets` draws its own widget bars in a notebook, which a saved notebook keeps as "0%"; the
# course's bars are text (recipe_utils.progress).
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
