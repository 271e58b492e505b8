"""Markdown tables and the report page."""

from __future__ import annotations

import datetime
import statistics

from .bars import bars_table, check_bars
from .common import DISTRIBUTION, DOCKYARD, MACHINE, SERVERS, GiB, MiB, X
from .measure import ATTEMPTS, NOISY_CORES, Results
from .method import method_text
from .metrics import CPU_GROUPS, LIMITS, METRICS, Metric, fmt, median
from .scenarios_gc import FLOOR_PROCESSES
from .servers import Server
from .settings import Settings


def median_cell(values: list[float] | None, failures: list[str] | None) -> str:
    if not values:
        return "failed" if failures else "n/a"
    cell = fmt(statistics.median(values))
    if failures:
        cell += f" ({len(failures)} failed)"
    return cell


def _label(metric: Metric, settings: Settings) -> str:
    size = (
        f"{settings.blob_size // MiB} MiB"
        if settings.blob_size < GiB
        else f"{settings.blob_size / GiB:g} GiB"
    )
    label = metric.label
    if metric.key in ("monolithic", "chunked", "pull", "pull_proxied"):
        label += f", {size}"
        if metric.key == "chunked":
            label += f" in {settings.chunk_size // MiB} MiB chunks"
    elif metric.key.startswith("small"):
        label += f", {settings.small_blobs:,} of 1-16 KiB, {settings.small_clients} clients"
    elif metric.key.startswith("dl_"):
        label += (f", {settings.download_clients} clients, "
                  f"{settings.download_size // MiB} MiB blob")
    elif metric.key.startswith("tags"):
        label += f", {settings.tags:,} tags"
    elif metric.key.startswith("catalog"):
        label += f", {settings.repositories:,} repositories"
    elif metric.key.startswith("gc"):
        label += f", {settings.gc_repositories:,} images"
        if settings.gc_delete_every != 2:
            label += f", 1 in {settings.gc_delete_every} deleted"
    return label


def results_table(
    results: Results, settings: Settings, metrics: tuple[Metric, ...] = METRICS
) -> str:
    rows = [
        "| Scenario | Unit | distribution 2.8.2 | dockyard | dockyard / distribution |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for metric in metrics:
        per_server = results.values.get(metric.key, {})
        fails = results.failures.get(metric.group, {})
        if not per_server and not fails:
            continue
        unit = f"{metric.unit} ({'higher' if metric.higher_is_better else 'lower'} is better)"
        dist = results.values.get(metric.versus or metric.key, {}).get(DISTRIBUTION)
        dock = per_server.get(DOCKYARD)
        dist_fails = results.failures.get("gc_offline" if metric.versus else metric.group, {})
        ratio = "n/a"
        if dist and dock and statistics.median(dist) > 0:
            value = statistics.median(dock) / statistics.median(dist)
            better = value >= 1 if metric.higher_is_better else value <= 1
            ratio = f"{value:.2f}" + ("" if better else " ⚠" if abs(value - 1) > 0.1 else "")
        dist_cell = median_cell(dist, dist_fails.get(DISTRIBUTION))
        if metric.versus:
            dist_cell += " (stopped)"
        rows.append(
            f"| {_label(metric, settings)} | {unit} | {dist_cell} "
            f"| {median_cell(dock, fails.get(DOCKYARD))} | {ratio} |"
        )
    return "\n".join(rows)


def limits_table(results: Results) -> str:
    rows = ["| Machine limit | MB/s (median) | per round |", "| --- | ---: | --- |"]
    for key, label in LIMITS:
        values = results.values.get(key, {}).get(MACHINE)
        if values:
            per_round = ", ".join(fmt(value) for value in values)
            rows.append(f"| {label} | {fmt(statistics.median(values))} | {per_round} |")
    return "\n".join(rows) if len(rows) > 2 else ""


FACT_ROWS = (
    ("start_main_s", "Start-up on an empty store (until /v2/ answers)", "s"),
    ("start_meta_s", "Start-up on the tags/catalog store (until /v2/ answers)", "s"),
    ("index_meta_s", "then the index build in the background, as dockyard logs it", "s"),
    ("start_gc_s", "Start-up on the GC store (first copy, until /v2/ answers)", "s"),
    ("index_gc_s", "then the index build in the background, as dockyard logs it", "s"),
    ("idle_rss_leader_mib", "Idle RSS after start, supervisor / main process", "MiB"),
    ("idle_rss_worker_max_mib", "Idle RSS after start, largest worker process", "MiB"),
    ("idle_rss_total_mib", "Idle RSS after start, whole process tree", "MiB"),
    ("peak_main_mib", "Peak RSS of the process tree, main server (blobs, manifests)", "MiB"),
    ("hwm_main_mib", "… sum of each process's VmHWM, main server", "MiB"),
    ("peak_auth_mib", "Peak RSS of the process tree, server with basic auth", "MiB"),
    ("peak_auth_bearer_mib", "Peak RSS of the process tree, server with bearer tokens", "MiB"),
    ("idle_downloads_mib", "RSS of the process tree before a concurrent-downloads run "
     "(restarted, warmed; median)", "MiB"),
    ("peak_meta_mib", "Peak RSS of the process tree, tags/catalog server", "MiB"),
    ("hwm_meta_mib", "… sum of each process's VmHWM, tags/catalog server", "MiB"),
    ("gc_store_blobs", "GC store: blobs before deleting half the images", "blobs"),
    ("gc_expected", "GC: blobs only the deleted images used (expected to go)", "blobs"),
    ("gc_deleted_offline", "GC stopped: blobs gone from disk (median run)", "blobs"),
    ("gc_reported_offline", "GC stopped: blobs the collector says it deleted", "blobs"),
    ("gc_deleted_online", "GC serving: blobs gone from disk (median run)", "blobs"),
    ("gc_reported_online", "GC serving: blobs the collector says it deleted", "blobs"),
    ("gc_load_requests", "GC serving: manifest GETs served during the GC (all runs)", "req"),
    ("gc_load_success_pct", "GC serving: success rate of those GETs", "%"),
)


def facts_table(
    results: Results, fact_rows: tuple[tuple[str, str, str], ...] = FACT_ROWS
) -> str:
    rows = [
        "| Measured once | Unit | distribution 2.8.2 | dockyard |",
        "| --- | --- | ---: | ---: |",
    ]
    for key, label, unit in fact_rows:
        cells = []
        for name in SERVERS:
            value = results.facts.get(name, {}).get(key)
            cells.append("n/a" if value is None else fmt(value))
        if cells != ["n/a", "n/a"]:
            rows.append(f"| {label} | {unit} | {cells[0]} | {cells[1]} |")
    workers = results.facts.get(DOCKYARD, {}).get("idle_rss_workers")
    text = "\n".join(rows)
    if workers is not None:
        text += f"\n\ndockyard ran {int(workers)} worker processes (the default: one per core)."
    return text


def cpu_table(results: Results, groups: dict[str, str] = CPU_GROUPS) -> str:
    rows = [
        "| Scenario (one run) | distribution: server CPU / client CPU / wall, s "
        "| dockyard: server CPU / client CPU / wall, s "
        "| other processes, cores (distribution / dockyard) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for group, label in groups.items():
        if not results.cpu.get(group):
            continue
        cells = []
        others = []
        for server in SERVERS:
            cpu = results.cpu[group].get(server)
            if not cpu:
                cells.append("n/a")
                others.append("n/a")
                continue
            client = results.client[group][server]
            wall = results.wall[group][server]
            cells.append(
                f"{statistics.median(cpu):.2f} / {statistics.median(client):.2f} / "
                f"{statistics.median(wall):.2f}"
            )
            others.append(f"{statistics.median(results.other[group][server]):.2f}")
        rows.append(f"| {label} | {cells[0]} | {cells[1]} | {' / '.join(others)} |")
    return "\n".join(rows)


def raw_values(results: Results) -> str:
    rows = [
        "| Metric | distribution, per round | dockyard, per round |",
        "| --- | --- | --- |",
    ]

    def cells(per_server: dict[str, list[float]], digits: str) -> list[str]:
        return [
            ", ".join(format(v, digits) if digits else fmt(v) for v in per_server.get(name, []))
            or "n/a"
            for name in SERVERS
        ]

    for metric in METRICS:
        per_server = results.values.get(metric.key, {})
        if per_server:
            dist, dock = cells(per_server, "")
            rows.append(f"| {metric.key} ({metric.unit}) | {dist} | {dock} |")
    for group in CPU_GROUPS:
        per_server = results.other.get(group, {})
        if per_server:
            dist, dock = cells(per_server, ".2f")
            rows.append(f"| other processes during {group} (cores) | {dist} | {dock} |")
    return "\n".join(rows)


def failure_notes(results: Results, servers: list[Server]) -> str:
    lines: list[str] = []
    for group, per_server in results.failures.items():
        for name, messages in per_server.items():
            for message in messages[:3]:
                body = message.strip().replace("```", "'''")
                lines.append(f"- **{name}, {group}**:\n\n  ```\n  {body[:1500]}\n  ```")
            if len(messages) > 3:
                lines.append(f"- **{name}, {group}**: {len(messages) - 3} more failures")
    for server in servers:
        for note in server.notes:
            lines.append(f"- **{server.name}**: {note[:1500]}")
    return "\n".join(lines)


def gc_floor_text(results: Results) -> str:
    """How long the deletes alone take on this disk, next to what a 5x faster GC would take."""
    floors = results.values.get("limit_gc_delete_s", {}).get(MACHINE)
    if not floors:
        return ""
    floor = statistics.median(floors)
    text = (
        "The disk's share of GC: deleting just the blob directories every collector must "
        f"delete here, with `rm -rf` spread over {FLOOR_PROCESSES} processes and nothing else "
        "(no marking, no "
        f"collector start-up), took {fmt(floor)} s (median; per round "
        f"{', '.join(fmt(value) for value in floors)})."
    )
    distribution = median(results, "gc_offline_s", DISTRIBUTION)
    if distribution:
        text += (
            f" A collector 5{X} faster than distribution's would finish in "
            f"{fmt(distribution / 5)} s."
        )
    return text


def report(
    settings: Settings,
    results: Results,
    servers: list[Server],
    info: dict[str, str],
    started: datetime.datetime,
    duration: float,
    logs: dict[str, str],
) -> str:
    rounds = f"{settings.rounds} round" + ("s" if settings.rounds != 1 else "")
    mode = "quick check" if settings.quick else "full run"
    notes = failure_notes(results, servers)
    nginx = median(results, "limit_nginx", MACHINE)
    parts = [
        "# Performance: dockyard vs distribution 2.8.2",
        "",
        "Generated by `benchmarks/run.py`; rerun it to refresh this page. Numbers from one noisy "
        "2-core machine are indicative: compare the ratio column, not absolute values, "
        "and rerun before drawing fine conclusions.",
        "",
        f"- Command: `{settings.command_line}` ({mode}, {rounds}, GC {settings.gc_rounds} "
        f"round{'s' if settings.gc_rounds != 1 else ''}, {duration / 60:.1f} minutes)",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {info['cpus']}, {info['memory']} memory, {info['kernel']}",
        f"- Python: {info['python']}",
        f"- distribution: `{info['distribution']}`",
        f"- dockyard: {info['dockyard']}",
        f"- Clients and references: {info['tools']}",
        "",
        "## Bars",
        "",
        bars_table(check_bars(results)),
        "",
        f"Ratios are of medians. \"{X} faster\" is distribution's time divided by dockyard's.",
        "",
        "## Results (medians)",
        "",
        results_table(results, settings),
        "",
        "MB/s is 10^6 bytes per second. The ratio is dockyard's median divided by "
        "distribution's; ⚠ marks a ratio more than 10% on the worse side.",
        "",
    ]
    limits = limits_table(results)
    if limits:
        pull = median(results, "pull", DOCKYARD)
        extra = ""
        if pull and nginx:
            extra = f"dockyard's blob pull reached {pull / nginx:.2f}{X} nginx."
        parts += ["## Machine limits (same run)", "", limits, "", extra.strip(), ""]
    parts += [
        "## Start-up, memory, garbage collection",
        "",
        facts_table(results),
        "",
        gc_floor_text(results),
        "",
        "## CPU time (medians)",
        "",
        "CPU seconds (user + system) that the server's process tree and the benchmark's "
        "clients (this script, curl, wrk, ab, skopeo, the GC commands) spent during one run of "
        "the scenario, its wall-clock seconds, and the average number of cores that other "
        "processes on the machine kept busy meanwhile (the machine is shared; each run first "
        f"waits, up to {settings.quiet_wait:.0f} s, until others use less than 0.3 of a core, "
        f"and a run during which they averaged more than {NOISY_CORES} cores is discarded and "
        f"repeated, at most {ATTEMPTS - 1} times). Discarded runs: "
        + ", ".join(f"{name} {results.discarded.get(name, 0)}" for name in (*SERVERS, MACHINE))
        + ".",
        "",
        cpu_table(results),
        "",
        "## Method",
        "",
        method_text(settings),
        "",
        "## Raw values per round",
        "",
        raw_values(results),
        "",
    ]
    if results.checks:
        parts += ["## Correctness spot checks (untimed, passed)", ""]
        parts += [f"- {line}" for line in results.checks]
        parts += [""]
    if notes:
        parts += ["## Failures and notes", "", notes, ""]
    if any(logs.values()):
        parts += ["## Server logs (last lines, log level warn)", ""]
        for name, text in logs.items():
            text = text.replace("```", "'''")
            if text:
                parts += [f"{name}:", "", "```", text, "```", ""]
    return "\n".join(parts)

