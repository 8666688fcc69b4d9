"""Capturing the records of one of provisiond's loggers in a test (the server configures
its own handlers, so pytest's caplog, which listens on the root logger, does not see them)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class Records(logging.Handler):
    def __init__(self, level: int = logging.DEBUG) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def of(self, event: str, limit: str) -> list[logging.LogRecord]:
        """The security log's records of one kind (``refused``/``throttled``) and limit."""
        return [
            r
            for r in self.records
            if getattr(r, "event", None) == event and getattr(r, "limit", None) == limit
        ]

    def text(self) -> str:
        """Every record, message and fields, as one text to search."""
        return "\n".join(r.getMessage() + " " + str(r.__dict__) for r in self.records)


@contextlib.contextmanager
def captured(name: str, level: int = logging.DEBUG) -> Iterator[Records]:
    logger = logging.getLogger(name)
    handler = Records(level)
    logger.addHandler(handler)
    previous = logger.level
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
