"""The process's logging: one handler on the root logger, one formatter for every line.

``provisiond serve`` configures logging once, before anything logs: the root logger gets
the one handler (stderr) and formatter (``log_format``: text or JSON), and every library
logger the process runs (uvicorn's, the MQTT client's, aiocoap's, SQLAlchemy's, asyncio's,
Alembic's) hands its records to it instead of printing its own way; Python's warnings are
logged too. With ``log_format = "json"`` every line is then one JSON object.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from provisiond.settings import LogFormat, Settings

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# uvicorn's copy of its message with ANSI colours, for its own coloured formatter
_DROPPED = {"color_message"}

# The loggers of the libraries a provisiond process runs: uvicorn's own handlers are
# replaced, and all of them propagate to the root's one handler.
LIBRARY_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "mqtt",  # aiomqtt's (paho's) default logger
    "aiomqtt",
    "aiocoap",
    "coap-server",  # aiocoap's server-side loggers
    "sqlalchemy",
    "aiosqlite",
    "asyncio",
    "alembic",
    "alembic.runtime.plugins",  # a line per Alembic plugin at each start: noise
    "httpx",
    "py.warnings",
)


_CHATTY = {
    "sqlalchemy",
    "aiosqlite",
    "httpx",
    "asyncio",
    "alembic.runtime.plugins",
}  # warnings up only


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(
            {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k not in _DROPPED}
        )
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """For people: the message alone (the structured fields are in it already)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record)} {record.levelname:<7} {record.name}: "
        line += record.getMessage()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _formatter(settings: Settings) -> logging.Formatter:
    return JsonFormatter() if settings.log_format is LogFormat.JSON else TextFormatter()


def configure_logging(settings: Settings) -> None:
    """provisiond's own loggers, in the settings' format (the app does this when it is
    built, in tests too: it leaves the root logger, which the test runner holds, alone)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(settings))
    root = logging.getLogger("provisiond")
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    root.propagate = False


def process_log_config(settings: Settings) -> dict[str, Any]:
    """The process's whole logging configuration (:func:`logging.config.dictConfig`, and
    uvicorn's ``log_config``): the root logger's one handler; every library logger without
    a handler of its own, propagating to it; provisiond's loggers as :func:`configure_logging`
    sets them."""
    formatter = (
        "provisiond.web.logs.JsonFormatter"
        if settings.log_format is LogFormat.JSON
        else "provisiond.web.logs.TextFormatter"
    )
    level = settings.log_level.upper()
    # Libraries never log at debug level, whatever provisiond's level: their debug lines
    # carry what provisiond keeps out of its log (aiosqlite's query parameters, the MQTT
    # client's user names). The chatty ones log warnings and errors only.
    library = "INFO" if level == "DEBUG" else level
    quiet = "WARNING" if level in ("DEBUG", "INFO") else level
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"provisiond": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "provisiond",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": library},
        "loggers": {
            "provisiond": {"handlers": ["stderr"], "level": level, "propagate": False},
            **{
                name: {
                    "handlers": [],
                    "level": quiet if name in _CHATTY else library,
                    "propagate": True,
                }
                for name in LIBRARY_LOGGERS
            },
        },
    }


def configure_process_logging(settings: Settings) -> None:
    """Configure the whole process's logging (`provisiond serve`, before it logs)."""
    logging.config.dictConfig(process_log_config(settings))
    logging.captureWarnings(True)
