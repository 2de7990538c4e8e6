"""What a run's console shows of the libraries' output: each message once, without the
libraries' tips and deprecation notices. The run's log file (`<run dir>/<task>.log`) keeps
every record; only the console handler of conf/hydra/job_logging/rich.yaml has the filter.
"""

from __future__ import annotations

import logging
import re

# Messages a researcher cannot act on: advertisements, notices of a library's own API
# changes, and Lightning's notes on choices genlab makes on purpose.
CONSOLE_NOISE = re.compile(
    r"💡 Tip"  # Lightning's advertisements
    r"|deprecat"  # a library's notice about its own API (`... is deprecated`, DeprecationWarning)
    r"|TPU available: False"  # genlab runs on CPUs and GPUs
    r"|Trainer already configured with model summary callbacks"  # genlab's rich summary
    r"|`weights_only` was not set",  # full checkpoints are what resume needs
    re.IGNORECASE,
)
# Loggers that Lightning gives a handler of their own when it is imported before logging
# is configured: their records would bypass the run's console filter and its log file.
LIBRARY_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric")


class ConsoleFilter(logging.Filter):
    """Drops CONSOLE_NOISE and every repeat of a message already shown (the same logger,
    level and text): a notice printed once per checkpoint or per epoch is shown once."""

    def __init__(self) -> None:
        super().__init__()
        self._shown: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if CONSOLE_NOISE.search(message):
            return False
        key = (record.name, record.levelno, message)
        if key in self._shown:
            return False
        self._shown.add(key)
        return True


def route_library_output_to_logging() -> None:
    """Send Python warnings and Lightning's messages through the root logger's handlers
    (the filtered console, the unfiltered log file) instead of straight to stderr."""
    logging.captureWarnings(True)
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
