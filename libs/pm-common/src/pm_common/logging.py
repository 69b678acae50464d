"""JSON log lines on stderr, one per event, tagged with the service name.

Never log patient data (names, emails, addresses, birth dates): log ids, counts and outcomes.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any


def logging_config(service: str, level: str = "INFO") -> dict[str, Any]:
    """A dictConfig that also routes uvicorn's loggers through the JSON formatter."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
                "static_fields": {"service": service},
            }
        },
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
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


def configure_logging(service: str, level: str = "INFO") -> None:
    """Install the JSON configuration for this process."""
    logging.config.dictConfig(logging_config(service, level))
