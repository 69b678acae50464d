"""The comparison with the Java original as a table: target / ours / Java / met, one row per figure.

The Java figures are the medians of three runs each on the same kind of machine, after 60 s of warm-up
(issue "Performance: beat the warmed-up Java original on every operation").
"""

from __future__ import annotations

from typing import cast

from .figures import HashParameters, JavaComparison, LoadFigures, Skipped
from .java import SEED_PATIENTS, describe_hash

MB_IN_MIB = 1e6 / 2**20

# Java figures and our targets (None: the Java original was not measured on that operation).
JAVA_LIST_RPS, JAVA_LIST_P99_MS, LIST_RPS, LIST_P99_MS = 1859, 69, 2800, 40
JAVA_CREATE_RPS, CREATE_RPS, CREATE_P99_MS = 424, 640, 150
JAVA_LOGIN_RPS = 6.8
LOGIN_RPS = 10.2  # 1.5 x Java
GET_RPS = 4000
JAVA_RSS_MIB, RSS_MB = 1375, 350
JAVA_STARTUP_SECONDS, STARTUP_SECONDS = 23.7, 4.0

Row = tuple[str, str, str, str, str]


def _verdict(outcome: bool | None) -> str:
    return "" if outcome is None else ("met" if outcome else "NOT met")


def _clean(load: LoadFigures) -> bool:
    return not (load["errors"] or load["non_2xx"])


def _load_cells(load: LoadFigures, unit: str = "req/s") -> str:
    return f"{load['rps']:,.1f} {unit}, p99 {load['p99_ms']:.1f} ms"


def _error_row(load: LoadFigures) -> Row:
    disturbed = f" ({load['disturbed_runs']} of {load['runs']} runs disturbed)" if load["disturbed_runs"] else ""
    return (f"  errors / non-2xx{disturbed}", "0 / 0", f"{load['errors']} / {load['non_2xx']}", "", "")


def java_rows(java: JavaComparison) -> list[Row]:
    """(figure, target, ours, Java, met) per figure measured."""
    rows: list[Row] = []
    if (listed := java.get("list")) is not None:
        n = java.get("list_rows", 0)
        comparable = n == SEED_PATIENTS
        met = listed["rps"] >= LIST_RPS and listed["p99_ms"] < LIST_P99_MS and _clean(listed)
        rows.append(
            (
                f"GET /api/patients ({n} rows), 32 conns",
                f">= {LIST_RPS:,} req/s, p99 < {LIST_P99_MS} ms",
                _load_cells(listed),
                f"{JAVA_LIST_RPS:,} req/s, p99 {JAVA_LIST_P99_MS} ms",
                _verdict(met) if comparable else f"not comparable ({n} rows, Java: {SEED_PATIENTS})",
            )
        )
        rows.append(_error_row(listed))
    if (by_id := java.get("get_by_id")) is not None:
        met = by_id["rps"] >= GET_RPS and _clean(by_id)
        rows.append(
            ("GET /api/patients/{id}, 32 conns", f">= {GET_RPS:,} req/s", _load_cells(by_id), "-", _verdict(met))
        )
        rows.append(_error_row(by_id))
    if (created := java.get("create")) is not None:
        delivery = java.get("create_delivery")
        delivered: bool | None = None
        delivered_cell = "delivery not checked"
        if delivery is not None and "skipped" not in delivery and "ok" in delivery:
            delivered = delivery["ok"]
            counted = f"{delivery['counted']}/{delivery['events']} counted"
            delivered_cell = f"{counted}, {delivery['accounts']}/{delivery['patients']} billed"
        met = created["rps"] >= CREATE_RPS and created["p99_ms"] < CREATE_P99_MS and _clean(created) and bool(delivered)
        rows.append(
            (
                "POST /api/patients, 16 conns",
                f">= {CREATE_RPS} creates/s, p99 < {CREATE_P99_MS} ms",
                _load_cells(created, "creates/s"),
                f"{JAVA_CREATE_RPS} creates/s",
                _verdict(met),
            )
        )
        rows.append(("  every create: event counted, billing account", "all", delivered_cell, "", ""))
        rows.append(_error_row(created))
    login = java.get("login")
    if login is not None:
        if "skipped" in login:
            rows.append(
                ("POST /auth/login, 4 conns", f">= {LOGIN_RPS} logins/s", _why(login), f"{JAVA_LOGIN_RPS}/s", "")
            )
        else:
            met = login["rps"] >= LOGIN_RPS and _clean(login)
            rows.append(
                (
                    "POST /auth/login, 4 conns",
                    f">= {LOGIN_RPS} logins/s (1.5x Java)",
                    _load_cells(login, "logins/s"),
                    f"{JAVA_LOGIN_RPS} logins/s",
                    _verdict(met),
                )
            )
            rows.append(_error_row(login))
    hashed = java.get("login_hash")
    if hashed is not None:
        rows.append(_hash_row(hashed))
    if (rss := java.get("memory_idle_rss_mib")) is not None:
        limit_mib = RSS_MB * MB_IN_MIB
        rows.append(
            (
                "idle RSS, five services",
                f"<= {RSS_MB} MB ({limit_mib:.0f} MiB)",
                f"{rss:,.0f} MiB ({rss / MB_IN_MIB:,.0f} MB)",
                f"{JAVA_RSS_MIB:,} MiB",
                _verdict(rss <= limit_mib),
            )
        )
    if (startup := java.get("startup_services_only_seconds")) is not None:
        rows.append(
            (
                "make up -> all healthy, PostgreSQL and Kafka running",
                f"<= {STARTUP_SECONDS:g} s",
                f"{startup:.1f} s",
                f"{JAVA_STARTUP_SECONDS} s",
                _verdict(startup <= STARTUP_SECONDS),
            )
        )
    return rows


def _why(skipped: object) -> str:
    """The reason of a Skipped (mypy cannot narrow a TypedDict union on a key being present)."""
    return str(cast(Skipped, skipped)["skipped"])


def _hash_row(hashed: HashParameters | Skipped) -> Row:
    label = "  password hash (OWASP minimum: argon2id m=19 MiB, t=2, p=1)"
    if "skipped" in hashed:
        return (label, ">= OWASP minimum", _why(hashed), "", "")
    ours = describe_hash(hashed)
    if stored := hashed.get("bench_user_hash"):
        ours += f"; bench user's stored hash {stored}"
    return (label, ">= OWASP minimum", ours, "", _verdict(hashed["at_least_owasp_minimum"]))


def print_java_table(java: JavaComparison) -> None:
    """The comparison as a markdown table (nothing when no comparison figure was measured)."""
    rows = java_rows(java)
    if not rows:
        return
    warmup = java.get("warmup_seconds")
    title = "comparison with the Java original" + ("" if warmup is None else f" (our warm-up {warmup} s)")
    header: Row = (title, "target", "ours (median)", "Java (60 s warm-up)", "met")
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(5)]
    print()
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
    print()
