"""The shapes of the figures and checks the bench reports (the results file's `figures` and `checks`)."""

from __future__ import annotations

from typing import NotRequired, TypedDict


class LoadFigures(TypedDict):
    """Medians over the rounds of one wrk load (latencies in ms)."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int
    runs: int
    disturbed_runs: int
    cpu_ms_per_request: dict[str, float]
    each: list[dict[str, object]]
    relay_catch_up_seconds: NotRequired[list[float]]


class GatewayRatio(TypedDict):
    """Gateway req/s over direct req/s, per round and their median."""

    median: float | None
    rounds: list[float]


class Percentiles(TypedDict):
    """p50 and p99 in ms (None: nothing measured)."""

    p50: float | None
    p99: float | None


class LagRound(TypedDict):
    """One round of paced creates and their event lag (ms)."""

    rate_per_s: int
    achieved_rate_per_s: float
    sent: int
    failed: int
    counted: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    answer_to_relay_claim_ms: Percentiles
    relay_claim_to_counted_ms: Percentiles
    cpu: dict[str, float]
    disturbed: bool


class EventLagFigures(TypedDict):
    """Medians and sums over the event-lag rounds."""

    rate_per_s: int
    p50_ms: float | None
    p99_ms: float | None
    sent: int
    counted: int
    failed: int
    disturbed_runs: int
    each: list[LagRound]


class Skipped(TypedDict):
    """A section or check that could not run, and why."""

    skipped: str


class ServiceMemory(TypedDict):
    """Memory of one service summed over its processes."""

    rss_mib: float
    pss_mib: float
    processes: int


class MemoryFigures(TypedDict):
    """Memory of every service and of the five together."""

    services: dict[str, ServiceMemory]
    total_rss_mib: float
    total_pss_mib: float


class StartupFigures(TypedDict):
    """Seconds from `make up` to all healthy: medians and every round."""

    services_only_seconds: float
    from_stopped_seconds: float
    each_services_only_seconds: list[float]
    each_from_stopped_seconds: list[float]


class DeliveryCheck(TypedDict):
    """Patients created during the bench, their events, the events counted, the billing accounts."""

    patients: int
    events: int
    counted: int
    accounts: int
    ok: NotRequired[bool]


class Figures(TypedDict, total=False):
    """Every figure of a run, in the order the sections run."""

    memory_idle: MemoryFigures
    get_gateway_c32: LoadFigures
    get_direct_c32: LoadFigures
    gateway_ratio: GatewayRatio
    get_gateway_c128: LoadFigures
    create_c32: LoadFigures
    event_lag: EventLagFigures | Skipped
    memory_after_load: MemoryFigures
    startup: StartupFigures
    java: JavaComparison


class HashParameters(TypedDict):
    """auth-service's password hash (what each login verifies) and OWASP's minimum for argon2id."""

    algorithm: str
    time_cost: int
    memory_cost_kib: int
    parallelism: int
    at_least_owasp_minimum: bool
    bench_user_hash: NotRequired[str]


class JavaComparison(TypedDict, total=False):
    """The loads the Java original was measured with, after `warmup_seconds` of the same load each."""

    warmup_seconds: int
    list_rows: int
    list: LoadFigures
    get_by_id: LoadFigures
    create: LoadFigures
    create_delivery: DeliveryCheck | Skipped
    login: LoadFigures | Skipped
    login_hash: HashParameters | Skipped
    memory_idle_rss_mib: float
    startup_services_only_seconds: float


class Checks(TypedDict, total=False):
    """The end-to-end checks of a run."""

    delivery: DeliveryCheck | Skipped
