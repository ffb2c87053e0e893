"""The one "HEIGHTxWIDTH" parser of every command and config (no TensorFlow import)."""
from __future__ import annotations

import argparse
from typing import Callable, Sequence


def parse_size(size: str | Sequence[int], minimum: int = 1) -> tuple[int, int]:
    """'256x512' (also '256*512' or (256, 512)) -> (256, 512).

    Raises ValueError quoting `size` when it is not two whole numbers, or when the height or
    width is below `minimum`.
    """
    if isinstance(size, str):
        parts = size.lower().replace("*", "x").split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"size must look like HEIGHTxWIDTH, e.g. 256x512 (or be (height, width)); got {size!r}")
        height, width = int(parts[0]), int(parts[1])
    else:
        try:
            height, width = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(f"size must be (height, width) or 'HEIGHTxWIDTH', got {size!r}") from None
    if height < minimum or width < minimum:
        raise ValueError(f"size must be at least {minimum}x{minimum}, got {height}x{width}")
    return height, width


def size_type(minimum: int = 1) -> Callable[[str], tuple[int, int]]:
    """An argparse `type=` for HEIGHTxWIDTH flags: `parse_size`, its message as the usage error."""

    def size(text: str) -> tuple[int, int]:
        try:
            return parse_size(text, minimum)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return size
