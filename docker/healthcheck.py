"""Container health probe: exit 0 when GET /health on $PORT answers 200 (and, with --grpc, gRPC health on $GRPC_PORT
reports SERVING), else print why and exit 1.

Every service image runs it as its HEALTHCHECK, with the image's own Python (slim images have no curl).
Standard library only for HTTP; --grpc imports grpcio and grpcio-health-checking, which billing-service has.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request

HEALTH_PATH = "/health"


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
    """Run the checks; the exit status is what Docker's HEALTHCHECK reads."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grpc", action="store_true", help="also check gRPC health on $GRPC_PORT")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per check (default 3)")
    args = parser.parse_args(argv)

    problems = [check_http(int(os.environ["PORT"]), args.timeout)]
    if args.grpc:
        problems.append(check_grpc(int(os.environ.get("GRPC_PORT", "9001")), args.timeout))
    failed = [p for p in problems if p is not None]
    for problem in failed:
        print(problem)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
