"""Progress bars that read as text wherever they end up.

`tqdm.auto` draws an ipywidgets bar inside a notebook: a saved notebook keeps only the widget's
placeholder text ("0%"), and `tqdm.notebook` ignores `TQDM_DISABLE`. The course's bars are the
plain text ones instead, written to stdout inside a notebook kernel (stderr reads as a warning
there) and to stderr in a terminal, refreshed at most every few seconds in a notebook so a saved
output stays short. `TQDM_DISABLE=1` silences them (the headless course sets it).
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.std import tqdm as text_tqdm

NOTEBOOK_REFRESH_S = 5.0


def tqdm(*args: Any, **kwargs: Any) -> text_tqdm:
    """A text `tqdm`; same arguments as `tqdm.tqdm`."""
    total = kwargs.get("total", len(args[0]) if args and hasattr(args[0], "__len__") else None)
    if total == 0:
        kwargs["disable"] = True  # nothing to do: no empty "0it" bar in a saved notebook
    if "ipykernel" in sys.modules:
        kwargs.setdefault("file", sys.stdout)
        kwargs.setdefault("mininterval", NOTEBOOK_REFRESH_S)
    return text_tqdm(*args, **kwargs)
