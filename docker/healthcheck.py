"""Container health probe of the service images: exit 0 when the service is healthy, else print why and exit 1.

Which service: $SERVICE (the image sets it from its SERVICE build argument), or --service. What it checks:
- GET /health on the service's HTTP port answers 200. The port is the first of $PORT, $SERVER_PORT that is set
  (the names the services' settings read, in their order), else the service's default, its contract port.
  What /health covers is the service's own: the gateway's is liveness only; the others answer 503 naming a
  failing dependency (database, Kafka).
- billing-service only: the standard grpc.health.v1 Check for the whole server ("") on its gRPC port answers
  SERVING. The port: $GRPC_PORT, $GRPC_SERVER_PORT, $BILLING_SERVICE_GRPC_PORT (billing's settings, in order),
  else 9001.

Runs with the image's own Python (slim images have no curl). Standard library only for HTTP; the gRPC check
imports grpcio and grpcio-health-checking, which billing-service's virtualenv has.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request

HEALTH_PATH = "/health"
# Each service's HTTP port when no env var sets it: the default of `port` in its Settings (the contract's port).
HTTP_PORTS = {
    "api-gateway": 4004,
    "auth-service": 4005,
    "patient-service": 4000,
    "billing-service": 4001,
    "analytics-service": 4002,
}
HTTP_PORT_ENV = ("PORT", "SERVER_PORT")
# The services that also serve gRPC, with the default of `grpc_port` in their Settings.
GRPC_PORTS = {"billing-service": 9001}
GRPC_PORT_ENV = ("GRPC_PORT", "GRPC_SERVER_PORT", "BILLING_SERVICE_GRPC_PORT")


def port_from_env(names: tuple[str, ...], default: int) -> int:
    """The first of names set (non-empty) in the environment, else default."""
    for name in names:
        if os.environ.get(name):
            return int(os.environ[name])
    return default


def _local_host() -> str:
    """Where the service listens as seen from inside its container: loopback unless bound to one address."""
    host = os.environ.get("HOST", "0.0.0.0")
    return "127.0.0.1" if host in {"", "0.0.0.0", "::"} else host


def check_http(port: int, timeout_s: float) -> str | None:
    """None when GET /health answers 200, else what went wrong."""
    url = f"http://{_local_host()}:{port}{HEALTH_PATH}"
    # No proxy: an HTTP(S)_PROXY in the container's environment must not intercept a loopback probe.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as exc:  # 503 with {"status": "DOWN", ...}: name the failing dependency
        body = exc.read(500).decode("utf-8", "replace")
        return f"{url} answered {exc.code}: {body}"
    except OSError as exc:  # refused, reset, timed out
        return f"{url} unreachable: {exc}"
    return None if status == 200 else f"{url} answered {status}"


def check_grpc(port: int, timeout_s: float) -> str | None:
    """None when the standard grpc.health.v1 Check for the whole server ("") answers SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = f"{_local_host()}:{port}"
    with grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)]) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError as exc:
            return f"gRPC health on {target}: {exc.code().name}"
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return f"gRPC health on {target}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the service's checks; the exit status is what Docker's HEALTHCHECK reads."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--service", default=os.environ.get("SERVICE"), choices=sorted(HTTP_PORTS))
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per check (default 3)")
    args = parser.parse_args(argv)
    if args.service not in HTTP_PORTS:  # argparse does not check a default against choices
        parser.error(f"unknown service {args.service!r}: set $SERVICE or pass --service")

    problems = [check_http(port_from_env(HTTP_PORT_ENV, HTTP_PORTS[args.service]), args.timeout)]
    if args.service in GRPC_PORTS:
        problems.append(check_grpc(port_from_env(GRPC_PORT_ENV, GRPC_PORTS[args.service]), args.timeout))
    failed = [p for p in problems if p is not None]
    for problem in failed:
        print(problem)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
