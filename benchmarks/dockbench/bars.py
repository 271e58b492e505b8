"""The bars dockyard is held to, checked against the medians of the run."""

from __future__ import annotations

from dataclasses import dataclass

from .common import DISTRIBUTION, DOCKYARD, MACHINE, NA, X
from .measure import Results
from .metrics import fmt, median


@dataclass
class Bar:
    name: str
    target: str
    value: float | None  # what was measured, in the bar's own terms
    shown: str  # the value as the table shows it
    passed: bool | None  # None: not measured
    margin: str  # by how much it passes or misses


def ratio_bar(
    results: Results, name: str, target: str, key: str, wanted: float, *,
    higher: bool = True, versus: str = "", times_faster: bool = False,
) -> Bar:
    dock = median(results, key, DOCKYARD)
    dist = median(results, versus or key, DISTRIBUTION)
    if dock is None or dist is None or dock <= 0 or dist <= 0:
        return Bar(name, target, None, "not measured", None, "")
    if times_faster:  # a time: how many times faster dockyard is
        value = dist / dock
        return _judge(name, target, value, f"{value:.2f}{X} faster", value >= wanted, wanted)
    value = dock / dist
    ok = value >= wanted if higher else value <= wanted
    return _judge(name, target, value, f"{value:.2f}{X}", ok, wanted, higher)


def _judge(
    name: str, target: str, value: float, shown: str, ok: bool, wanted: float,
    higher: bool = True,
) -> Bar:
    if higher:
        margin = (value / wanted - 1) * 100
    else:
        margin = (wanted / value - 1) * 100 if value > 0 else 100.0
    word = "above" if ok else "short of"
    amount = f"{abs(margin):.0f}%" if abs(margin) >= 10 else f"{abs(margin):.1f}%"
    return Bar(name, target, value, shown, ok, f"{amount} {word} the bar")


def check_bars(results: Results) -> list[Bar]:
    bars = [
        ratio_bar(results, "Blob pull vs distribution", "≥ 1.2x", "pull", 1.2),
    ]
    pull = median(results, "pull", DOCKYARD)
    nginx = median(results, "limit_nginx", MACHINE)
    if pull and nginx:
        value = pull / nginx
        bars.append(_judge("Blob pull vs nginx", "≥ 0.8x", value, f"{value:.2f}{X}",
                           value >= 0.8, 0.8))
    else:
        bars.append(Bar("Blob pull vs nginx", "≥ 0.8x", None, "not measured", None, ""))
    for key, label in (("monolithic", "monolithic"), ("chunked", "chunked")):
        bars.append(ratio_bar(results, f"Blob push ({label}) vs distribution", "≥ 1.2x",
                              key, 1.2))
    sha = median(results, "limit_sha256", MACHINE)
    disk = median(results, "limit_disk", MACHINE)
    for key, label in (("monolithic", "monolithic"), ("chunked", "chunked")):
        push = median(results, key, DOCKYARD)
        name = f"Blob push ({label}) vs min(sha256, disk+fsync)"
        if push and sha and disk:
            value = push / min(sha, disk)
            shown = f"{value:.2f}{X} of {fmt(min(sha, disk))} MB/s"
            bars.append(_judge(name, "≥ 0.7x", value, shown, value >= 0.7, 0.7))
        else:
            bars.append(Bar(name, "≥ 0.7x", None, "not measured", None, ""))
    bars += [
        ratio_bar(results, "Manifest GET req/s", "≥ 1.0x", "manifest_get_rps", 1.0),
        ratio_bar(results, "Manifest GET p99", "no worse (≤ 1.0x)", "manifest_get_p99", 1.0,
                  higher=False),
        ratio_bar(results, "Manifest HEAD req/s", "≥ 1.0x", "manifest_head_rps", 1.0),
        ratio_bar(results, "Manifest HEAD p99", "no worse (≤ 1.0x)", "manifest_head_p99", 1.0,
                  higher=False),
        ratio_bar(results, "Catalog of all repositories, time per request", "≥ 20x faster",
                  "catalog_ms", 20, times_faster=True),
        ratio_bar(results, "Tags list (all tags) req/s", "≥ 5x", "tags_rps", 5),
        ratio_bar(results, "Small blobs push blobs/s", "≥ 1.0x", "small_push", 1.0),
        ratio_bar(results, "Small blobs pull blobs/s", "≥ 1.0x", "small_pull", 1.0),
        ratio_bar(results, "Concurrent downloads, fast clients: peak RSS", "≤ 1.0x",
                  "dl_fast_peak_mib", 1.0, higher=False),
        ratio_bar(results, "Concurrent downloads, slow clients: peak RSS", "≤ 1.0x",
                  "dl_slow_peak_mib", 1.0, higher=False),
        ratio_bar(results, "GC, both registries stopped", "≥ 5x faster", "gc_offline_s", 5,
                  times_faster=True),
        ratio_bar(results, "GC, dockyard serving vs distribution stopped", "≥ 5x faster",
                  "gc_online_s", 5, versus="gc_offline_s", times_faster=True),
    ]
    idle = results.facts.get(DOCKYARD, {}).get("idle_rss_worker_max_mib")
    if idle is not None:
        bars.append(_judge("Idle RSS per dockyard worker (largest)", "< 80 MiB", idle,
                           f"{idle:.0f} MiB", idle < 80, 80, higher=False))
    else:
        bars.append(Bar("Idle RSS per dockyard worker", "< 80 MiB", None, "not measured", None,
                        ""))
    bars.append(auth_cost_bar(results))
    return bars


def auth_cost_bar(results: Results, limit: float = 20.0) -> Bar:
    """dockyard's req/s lost to auth, basic and bearer alike: the worse one is judged."""
    name = "Auth cost (req/s lost with basic auth / bearer token)"
    costs = {label: cost for label, key in (("basic", "auth_cost_pct"),
                                            ("bearer", "bearer_cost_pct"))
             if (cost := median(results, key, DOCKYARD)) is not None}
    if not costs:
        return Bar(name, f"< {limit:.0f}%", None, "not measured", None, "")
    worst = max(costs.values())
    shown = ", ".join(f"{label} {cost:.1f}%" for label, cost in costs.items())
    ok = worst < limit
    margin = f"{abs(limit - worst):.1f} points {'under' if ok else 'over'} {limit:.0f}%"
    if len(costs) == 1:
        margin += f" (only {next(iter(costs))} measured)"
    return Bar(name, f"< {limit:.0f}%", worst, shown, ok, margin)


def bars_table(bars: list[Bar]) -> str:
    rows = ["| Bar | Target | dockyard | Pass | By how much |", "| --- | --- | ---: | :-: | --- |"]
    for bar in bars:
        mark = NA if bar.passed is None else ("✓" if bar.passed else "✗")
        target = bar.target.replace("x", X)
        rows.append(f"| {bar.name} | {target} | {bar.shown} | {mark} | {bar.margin} |")
    return "\n".join(rows)
