"""Logging a failure without its text.

An exception's message can quote the record it failed on: a ClickHouse insert error
quotes values, a parser quotes its input, a stage error may carry prompt text. Audit
content must never reach a log, so failures are logged by type and place only: the type
at ERROR, the traceback's frames (file, line and function only: no source line, no
values, no message) at DEBUG.
"""

from __future__ import annotations

import logging
import traceback


def log_failure(logger: logging.Logger, message: str, exc: BaseException,
                level: int = logging.ERROR) -> None:
    """``message: ExceptionType`` at ``level``; where it was raised at DEBUG."""
    logger.log(level, "%s: %s", message, type(exc).__name__)
    if logger.isEnabledFor(logging.DEBUG):
        frames = traceback.extract_tb(exc.__traceback__)
        logger.debug("%s: raised at\n%s", message, "\n".join(
            f"  {frame.filename}:{frame.lineno} in {frame.name}" for frame in frames))
