"""JSON log lines on stderr, one per event, tagged with the service name.

Never log patient data (names, emails, addresses, birth dates): log ids, counts and outcomes.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

from pm_common.telemetry import current_request_id, current_trace_id


def logging_config(service: str, level: str = "INFO") -> dict[str, Any]:
    """A dictConfig that also routes uvicorn's loggers through the JSON formatter."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                # orjson: 5 us a line instead of the json module's 13 (one access line per request).
                "()": "pythonjsonlogger.orjson.OrjsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
                "static_fields": {"service": service},
            }
        },
        # request_id and trace_id of the request, RPC or Kafka batch being handled (pm_common.telemetry).
        "filters": {"context": {"()": "pm_common.logging.ContextFilter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["context"]}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            # Each service writes its own access line (without query strings or bodies).
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
            "aiokafka": {"level": "WARNING"},
            "sqlalchemy": {"level": "WARNING"},
        },
    }


class ContextFilter(logging.Filter):
    """Adds `request_id` and `trace_id` to every line written while a request, an RPC or a Kafka record
    is handled (unless the line names them itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always True: this filter only annotates."""
        if getattr(record, "request_id", None) is None:
            request_id = current_request_id()
            if request_id is not None:
                record.request_id = request_id
        if getattr(record, "trace_id", None) is None:
            trace_id = current_trace_id()
            if trace_id is not None:
                record.trace_id = trace_id
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    """Install the JSON configuration for this process."""
    # What no line of ours carries is not collected either (the logging HOWTO's "Optimization"): the
    # caller's frame, thread and process per record cost ~2 of the ~13 us of an access line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.config.dictConfig(logging_config(service, level))
