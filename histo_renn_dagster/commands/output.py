"""What every command prints: JSON lines on stdout, one object per item."""

from __future__ import annotations

import json


def emit(record: dict) -> None:
    """One JSON object per line on stdout, flushed so pipes and tests see it at once."""
    print(json.dumps(record, sort_keys=True, default=str), flush=True)
