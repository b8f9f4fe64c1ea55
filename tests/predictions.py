"""Reading a scoring run's predictions back, the way the parallel and GPU tests compare runs."""

import json
from pathlib import Path


def answers(predictions: Path) -> dict[str, list[str]]:
    """Each clip's raw answers; fails if a clip was written twice."""
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(records) == len({r["id"] for r in records}), "a clip was written twice"
    return {r["id"]: r["raw"] for r in records}
