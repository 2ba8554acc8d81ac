"""Loguru set-up: readable lines for people, one JSON object per line for machines."""

from __future__ import annotations

import sys
from typing import TextIO

from loguru import logger


def configure_logging(level: str = "INFO", fmt: str = "human", stream: TextIO | None = None) -> None:
    """Replace loguru's default handler; logs go to stderr so stdout stays for results."""
    logger.remove()
    sink = stream or sys.stderr
    if fmt == "json":
        logger.add(sink, level=level.upper(), serialize=True, backtrace=False, diagnose=False)
    else:
        logger.add(
            sink,
            level=level.upper(),
            format="<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> <cyan>{name}</cyan> {message}",
            backtrace=False,
            diagnose=False,
        )
