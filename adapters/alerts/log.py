"""The log sink: alerts into the run's log, so a machine without any secrets still shows them."""

from __future__ import annotations

from loguru import logger

_LEVELS = {"info": "INFO", "warning": "WARNING", "critical": "CRITICAL"}


class LogSink:
    """Writes each alert as one log record; ``alert_sink`` is bound so a loguru handler can
    filter alerts out of (or into) its own file."""

    def __init__(self, name: str = "log") -> None:
        self.name = name

    def send(self, severity: str, title: str, body: str) -> None:
        level = _LEVELS.get(severity, "CRITICAL")
        one_line = " | ".join(part for part in body.splitlines() if part)
        logger.bind(alert_sink=self.name).log(level, "alert: {} — {}", title, one_line)
