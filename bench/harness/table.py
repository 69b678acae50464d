"""The figures as a markdown table, with the performance issue's targets and whether each is met."""

from __future__ import annotations

from collections.abc import Callable

from .figures import Checks, Figures, LoadFigures, MemoryFigures

TARGETS: dict[str, tuple[str, Callable[[Figures], bool | None]]] = {
    "gateway_ratio": (">= 0.6x", lambda f: _ge(f.get("gateway_ratio", {}).get("median"), 0.6)),
    "get_gateway_c32": (
        ">= 1000 req/s, p99 < 100 ms",
        lambda f: (
            None
            if "get_gateway_c32" not in f
            else f["get_gateway_c32"]["rps"] >= 1000 and f["get_gateway_c32"]["p99_ms"] < 100
        ),
    ),
    "create_c32": (">= 250 req/s", lambda f: _ge(f.get("create_c32", {}).get("rps"), 250)),
    "event_lag": ("p99 < 100 ms", lambda f: _lt(_lag_p99(f), 100)),
    "memory": ("< 400 MB", lambda f: _lt(f.get("memory_idle", {}).get("total_rss_mib"), 400 * 1e6 / 2**20)),
}


def _ge(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def _lt(value: float | None, limit: float) -> bool | None:
    return None if value is None else value < limit


def _lag_p99(figures: Figures) -> float | None:
    lag = figures.get("event_lag")
    return None if lag is None or "skipped" in lag else lag["p99_ms"]


def verdict(key: str, figures: Figures) -> str:
    """`met` / `NOT met` / `` for a target."""
    outcome = TARGETS[key][1](figures)
    return "" if outcome is None else ("met" if outcome else "NOT met")


def print_table(figures: Figures, checks: Checks) -> None:
    """The figures as a markdown table, with the targets of the performance issue."""
    rows: list[tuple[str, str, str, str]] = []

    def wrk_rows(f: LoadFigures | None, label: str, target_key: str | None = None) -> None:
        if not f:
            return
        target, met = (TARGETS[target_key][0], verdict(target_key, figures)) if target_key else ("", "")
        flags = f" ({f['disturbed_runs']} of {f['runs']} runs disturbed)" if f.get("disturbed_runs") else ""
        rows.append((label, f"{f['rps']:,.0f} req/s", target, met))
        rows.append(("  latency p50 / p99", f"{f['p50_ms']:.1f} / {f['p99_ms']:.1f} ms", "", ""))
        rows.append(("  errors / non-2xx" + flags, f"{f['errors']} / {f['non_2xx']}", "0 / 0", ""))

    wrk_rows(figures.get("get_gateway_c32"), "GET /api/patients/{id} via gateway, 32 conns", "get_gateway_c32")
    wrk_rows(figures.get("get_direct_c32"), "GET /patients/{id} direct, 32 conns")
    ratio = figures.get("gateway_ratio")
    if ratio is not None and ratio["median"] is not None:
        each = " ".join(f"{r:.2f}" for r in ratio["rounds"])
        rows.append(
            (
                f"gateway / direct req/s, same round ({each})",
                f"{ratio['median']:.2f}x",
                TARGETS["gateway_ratio"][0],
                verdict("gateway_ratio", figures),
            )
        )
    wrk_rows(figures.get("get_gateway_c128"), "GET /api/patients/{id} via gateway, 128 conns")
    wrk_rows(figures.get("create_c32"), "POST /api/patients via gateway, 32 conns", "create_c32")
    lag = figures.get("event_lag")
    if lag is not None and "skipped" not in lag and lag["p50_ms"] is not None and lag["p99_ms"] is not None:
        rows.append(
            (
                f"event lag POST answer -> counted, {lag['rate_per_s']}/s, p50 / p99",
                f"{lag['p50_ms']:.1f} / {lag['p99_ms']:.1f} ms",
                TARGETS["event_lag"][0],
                verdict("event_lag", figures),
            )
        )
        rows.append(("  events counted / creates answered 201", f"{lag['counted']} / {lag['sent']}", "all", ""))
    memories: tuple[tuple[MemoryFigures | None, str, bool], ...] = (
        (figures.get("memory_idle"), "idle, before load", True),
        (figures.get("memory_after_load"), "idle, after load", False),
    )
    for memory, label, has_target in memories:
        if not memory:
            continue
        for name, m in memory["services"].items():
            workers = f", {m['processes']} processes" if m["processes"] > 1 else ""
            rows.append((f"  RSS {name} ({label}{workers})", f"{m['rss_mib']:.0f} MiB", "", ""))
        target, met = (TARGETS["memory"][0], verdict("memory", figures)) if has_target else ("", "")
        rows.append(
            (
                f"RSS of the five services ({label}; PSS {memory['total_pss_mib']:.0f} MiB)",
                f"{memory['total_rss_mib']:.0f} MiB",
                target,
                met,
            )
        )
    startup = figures.get("startup")
    if startup:
        rows.append(
            ("make up -> all healthy (PostgreSQL, Kafka running)", f"{startup['services_only_seconds']:.1f} s", "", "")
        )
        rows.append(("make up -> all healthy (after make down)", f"{startup['from_stopped_seconds']:.1f} s", "", ""))
    delivery = checks.get("delivery")
    if delivery and "skipped" not in delivery and "ok" in delivery:
        rows.append(
            (
                "every patient created: event counted, billing account",
                f"{delivery['counted']}/{delivery['events']}, {delivery['accounts']}/{delivery['patients']}",
                "all",
                "ok" if delivery["ok"] else "MISMATCH",
            )
        )
    widths = [max(len(r[i]) for r in [*rows, ("figure", "measured (median)", "target", "")]) for i in range(4)]
    print()
    print("| " + " | ".join(h.ljust(w) for h, w in zip(("figure", "median", "target", ""), widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]), row[3].ljust(widths[3])]
        print("| " + " | ".join(cells) + " |")
    print()
