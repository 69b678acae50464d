"""The stack's URLs (defaults: the `make up` stack) and the rule that they are all on this machine."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from devstack.stack import Stack

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def gateway_url(stack: Stack) -> str:
    """The api-gateway of `stack`."""
    return stack.url(stack.service("api-gateway"))


def patient_url(stack: Stack) -> str:
    """patient-service of `stack`, without the gateway."""
    return stack.url(stack.service("patient-service"))


def postgres_url(stack: Stack) -> str:
    """The PostgreSQL cluster holding the services' databases of `stack`."""
    return f"postgresql://postgres@127.0.0.1:{stack.ports.postgres}"


def require_loopback(url: str) -> None:
    """Refuse to load anything that is not on this machine."""
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK and not host.startswith("127."):
        raise SystemExit(f"refusing to benchmark {url}: loopback addresses only")


@dataclass(frozen=True)
class Endpoints:
    """Where the gateway, patient-service and (None: no database access) PostgreSQL answer."""

    gateway: str
    patient: str
    postgres: str | None

    @classmethod
    def of(cls, stack: Stack) -> Endpoints:
        """The endpoints of a stack the launcher knows."""
        return cls(gateway=gateway_url(stack), patient=patient_url(stack), postgres=postgres_url(stack))

    def database(self, name: str) -> str:
        """URL of one database of the cluster."""
        assert self.postgres is not None
        return f"{self.postgres.rstrip('/')}/{name}"
