"""The report section of an `--storage s3` run, and putting it into the report page without
touching the filesystem sections."""

from __future__ import annotations

import datetime
import statistics

from .bars import Bar, _judge, bars_table, ratio_bar
from .common import DISTRIBUTION, DOCKYARD, MACHINE, SERVERS, MiB, X
from .measure import Results
from .metrics import Metric, fmt, median
from .report import cpu_table, facts_table, failure_notes, results_table
from .s3store import S3Endpoint
from .scenarios_s3 import S3GC
from .servers import Server
from .settings import Settings

HEADING = "## On S3 (Ceph radosgw)"

S3_METRICS = (
    Metric("monolithic", "Monolithic blob push (POST + one PUT)", "MB/s", True, "monolithic"),
    Metric("chunked", "Chunked blob push (POST + PATCH + PUT)", "MB/s", True, "chunked"),
    Metric("pull", "Blob pull, redirected (GET, 307, curl -L from S3)", "MB/s", True, "pull"),
    Metric("pull_proxied", "Blob pull, proxied (storage.redirect.disable: true)", "MB/s",
           True, "pull_proxied"),
    Metric("small_push", "Small blobs push (POST + PUT)", "blobs/s", True, "small_push"),
    Metric("small_pull", "Small blobs pull (GET, proxied)", "blobs/s", True, "small_pull"),
    Metric("skopeo_push", "skopeo copy push, 5-layer image", "s", False, "skopeo"),
    Metric("skopeo_pull", "skopeo copy pull, 5-layer image (follows redirects)", "s", False,
           "skopeo"),
    Metric("gc_offline_s", "Garbage collection, registry stopped", "s", False, "gc_offline"),
    Metric("gc_online_s", "Garbage collection, dockyard serving (vs distribution stopped)",
           "s", False, "gc_online", versus="gc_offline_s"),
    Metric("gc_before_sweep_s", "… dockyard serving: until it sweeps (index sync, listing)",
           "s", False, "gc_online"),
    Metric("gc_sweep_s", "… dockyard serving: sweeping the blobs", "s", False, "gc_online"),
    Metric("gc_after_sweep_s", "… dockyard serving: after the sweep (uploads, empty "
           "repositories)", "s", False, "gc_online"),
)

S3_CPU_GROUPS = {
    "monolithic": "monolithic push",
    "chunked": "chunked push",
    "pull": "pull, redirected",
    "pull_proxied": "pull, proxied",
    "small_push": "small blobs push",
    "small_pull": "small blobs pull",
    "skopeo": "skopeo push + pull",
    "gc_offline": "GC, registry stopped",
    "gc_online": "GC, dockyard serving",
}

S3_LIMITS = (
    ("limit_s3_put", "PUT of the blob (curl -T to a presigned URL)", "MB/s"),
    ("limit_s3_get", "GET of it (curl to a presigned URL)", "MB/s"),
    ("limit_s3_copy", "server-side CopyObject of it (one request)", "MB/s"),
    ("limit_s3_store_put", "PUTs of small objects writing the GC store, concurrently",
     "objects/s"),
    ("limit_s3_gc_delete_s", "deleting just the blobs GC must delete (DeleteObjects, 1,000 "
     "keys a request)", "s"),
    ("limit_s3_gc_delete_links_s", "deleting those blobs and the deleted images' layer links "
     "(the same way)", "s"),
)

S3_FACT_ROWS = (
    ("start_main_s", "Start-up on an empty S3 root (until /v2/ answers)", "s"),
    ("peak_main_mib", "Peak RSS of the process tree, redirecting server", "MiB"),
    ("gc_store_blobs", "GC store: blobs before deleting half the images", "blobs"),
    ("gc_expected", "GC: blobs only the deleted images used (expected to go)", "blobs"),
    ("start_gc_s", "Start-up on the GC store (first copy, until /v2/ answers)", "s"),
    ("index_gc_s", "then the index build in the background, as dockyard logs it", "s"),
    ("gc_deleted_offline", "GC stopped: blobs gone from S3 (median run)", "blobs"),
    ("gc_reported_offline", "GC stopped: blobs the collector says it deleted", "blobs"),
    ("gc_links_left_offline", "GC stopped: layer links of the deleted images left behind",
     "links"),
    ("gc_deleted_online", "GC serving: blobs gone from S3 (median run)", "blobs"),
    ("gc_reported_online", "GC serving: blobs the collector says it deleted", "blobs"),
    ("gc_load_requests", "GC serving: manifest GETs served during the GC (all runs)", "req"),
    ("gc_load_success_pct", "GC serving: success rate of those GETs", "%"),
)


def s3_bars(results: Results) -> list[Bar]:
    bars = [
        ratio_bar(results, "Blob push (monolithic) vs distribution", "≥ 1.0x", "monolithic",
                  1.0),
        ratio_bar(results, "Blob push (chunked) vs distribution", "≥ 1.0x", "chunked", 1.0),
        ratio_bar(results, "Blob pull, redirected, vs distribution", "≥ 1.0x", "pull", 1.0),
        ratio_bar(results, "Blob pull, proxied, vs distribution", "≥ 1.0x", "pull_proxied",
                  1.0),
        ratio_bar(results, "Small blobs push blobs/s", "≥ 1.0x", "small_push", 1.0),
        ratio_bar(results, "Small blobs pull blobs/s", "≥ 1.0x", "small_pull", 1.0),
        ratio_bar(results, "skopeo push", "≥ 1.0x faster", "skopeo_push", 1.0,
                  times_faster=True),
        ratio_bar(results, "skopeo pull", "≥ 1.0x faster", "skopeo_pull", 1.0,
                  times_faster=True),
        ratio_bar(results, "GC, both registries stopped", "≥ 10x faster", "gc_offline_s", 10,
                  times_faster=True),
        ratio_bar(results, "GC, dockyard serving vs distribution stopped", "≥ 10x faster",
                  "gc_online_s", 10, versus="gc_offline_s", times_faster=True),
    ]
    put = median(results, "limit_s3_put", MACHINE)
    push = median(results, "monolithic", DOCKYARD)
    if put and push:
        value = push / put
        bars.append(_judge("Blob push (monolithic) vs the S3 server's own PUT", "≥ 0.7x",
                           value, f"{value:.2f}{X} of {fmt(put)} MB/s", value >= 0.7, 0.7))
    # Not measured is left out: with --scenarios a subset, the table stays short.
    return [bar for bar in bars if bar.passed is not None]


def limits_table(results: Results) -> str:
    rows = ["| The S3 server alone | Unit | median | per round |", "| --- | --- | ---: | --- |"]
    for key, label, unit in S3_LIMITS:
        values = results.values.get(key, {}).get(MACHINE)
        if values:
            per_round = ", ".join(fmt(value) for value in values)
            rows.append(f"| {label} | {unit} | {fmt(statistics.median(values))} "
                        f"| {per_round} |")
    return "\n".join(rows) if len(rows) > 2 else ""


def backend_cpu_line(results: Results) -> str:
    """The S3 server's median CPU seconds per run, next to the registries'."""
    cells = []
    for group, label in S3_CPU_GROUPS.items():
        per_server = results.backend.get(group, {})
        shown = [f"{statistics.median(per_server[name]):.2f}" if per_server.get(name)
                 else "n/a" for name in SERVERS]
        if shown != ["n/a", "n/a"]:
            cells.append(f"{label} {shown[0]} / {shown[1]}")
    if not cells:
        return ""
    return ("CPU seconds the Ceph daemons (mon, OSD, radosgw) spent during one run, with "
            "distribution / with dockyard (medians): " + "; ".join(cells) + ".")


def method_text(settings: Settings, endpoint: S3Endpoint, objectstore: str, gc: S3GC | None
                ) -> str:
    blob = f"{settings.blob_size // MiB} MiB"
    where = (
        f"a single-host Ceph cluster started by the benchmark (one mon, one OSD on "
        f"{objectstore}, one radosgw with `tcp_nodelay`, on loopback; the test suite's "
        "`run_radosgw`)" if endpoint.name == "radosgw"
        else "the external S3 named by `DOCKYARD_TEST_S3_*`"
    )
    index_where = (
        "of the GC stores in a PostgreSQL database each (`database:`, migrated before the "
        "start; `--index postgres`), else in a local directory (`storage.s3.indexdirectory`)"
        if settings.index == "postgres"
        else "in a local directory (`storage.s3.indexdirectory`)")
    paragraphs = [
        f"Both registries store into one bucket of {where}, each under its own "
        "`rootdirectory`, with the same config.yml otherwise (`storage.s3` with "
        "`regionendpoint`, `forcepathstyle`, keys; deletes enabled; log level warn). dockyard "
        f"keeps its index {index_where} and is measured once its background build of "
        "the index (logged at info level) is done; distribution "
        "is started without `AWS_CA_BUNDLE` in its environment (its S3 driver panics on it). "
        "Per side, one server redirects blob GETs (both registries' default on S3: `307` to "
        "a presigned URL) and a second one on the same root has "
        "`storage.redirect.disable: true`, so both pulls read the blob the chunked push "
        "wrote. distribution redirects a blob HEAD too (a 307 counts as the blob being "
        "there); dockyard answers HEAD itself. Scenarios run interleaved, the order flipping "
        "each round; medians are shown.",
        f"**Blobs.** The {blob} random blob is removed from the store (its objects deleted) "
        "before every push. Monolithic: POST + one `PUT ?digest=` streamed by `curl -T`. "
        f"Chunked: POST, `PATCH` requests of {settings.chunk_size // MiB} MiB with "
        "`Content-Range`, the closing PUT. In round 1 the stored object is hashed after each "
        "push. Pull, redirected: `curl -L` following the 307 to radosgw. Pull, proxied: "
        "`curl` from the server with redirects disabled. Small blobs are pushed to the "
        "redirecting server and pulled from the proxying one (one request each), "
        f"{settings.small_clients} clients at once. skopeo pushes and pulls a 5-layer image "
        "(it follows redirects).",
        "**The S3 server alone**, once per round: `curl -T` of the blob file to a presigned "
        "PUT URL, `curl` of a presigned GET URL, and one `CopyObject` of it, so the "
        "registries' numbers can be read against what the S3 server itself does. The GC "
        "store's writing rate (concurrent PUTs of small objects from the benchmark) is "
        "shown too. A copy far faster than the PUT means the S3 server shares the data "
        "instead of copying it (radosgw does within a pool), so a server-side move costs a "
        "request, not the bytes.",
        f"**GC.** A store of {settings.gc_repositories:,} images (config + 4 layers each, "
        "one base layer shared from a pool of 20) is written once on disk in "
        "distribution's layout and PUT straight into S3 "
        f"({settings.s3_concurrency} at once) under a fresh root for every collector run; "
        "the server starts on it, half the images are deleted through the API, and then "
        "the collector is timed: distribution's `docker-registry garbage-collect` with the "
        f"server stopped; {gc.describe() if gc else 'dockyard: not run'}. Blobs left are "
        "counted by listing the bucket; kept images are fetched back whole afterwards. "
        "Before the collectors, the blobs they must delete are PUT alone under another "
        "root and deleted with `DeleteObjects` (1,000 keys a request, "
        f"{settings.s3_concurrency} requests at once), timed: the S3 server's floor for any "
        "collector; then the same with the deleted images' layer links beside them, the "
        "floor for a collector that leaves no dangling link and no empty repository. The "
        "layer links of the deleted images left after each collector are counted by "
        "listing the bucket.",
    ]
    return "\n\n".join(paragraphs)


def s3_section(
    settings: Settings, results: Results, servers: list[Server], info: dict[str, str],
    endpoint: S3Endpoint, objectstore: str, gc: S3GC | None, started: datetime.datetime,
    duration: float,
) -> str:
    rounds = f"{settings.rounds} round" + ("s" if settings.rounds != 1 else "")
    mode = "quick check" if settings.quick else "full run"
    server = (f"Ceph radosgw ({info.get('radosgw', 'version unknown')}), OSD on {objectstore}"
              if endpoint.name == "radosgw" else "an external S3 (`DOCKYARD_TEST_S3_*`)")
    parts = [
        HEADING,
        "",
        "Both registries on the same S3 server, written by `benchmarks/run.py --storage s3` "
        "(rerun it to refresh this section only).",
        "",
        f"- Command: `{settings.command_line}` ({mode}, {rounds}, GC {settings.gc_rounds} "
        f"round{'s' if settings.gc_rounds != 1 else ''}, {duration / 60:.1f} minutes)",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- S3 server: {server}, on the same machine ({info['cpus']}, {info['memory']} "
        "memory)",
        f"- distribution: `{info['distribution']}`; dockyard: {info['dockyard']}",
        "",
        "### Bars on S3",
        "",
        bars_table(s3_bars(results)),
        "",
        "### Results on S3 (medians)",
        "",
        results_table(results, settings, S3_METRICS),
        "",
    ]
    limits = limits_table(results)
    if limits:
        parts += ["### What the S3 server itself does (same run)", "", limits, ""]
        put = median(results, "limit_s3_put", MACHINE)
        get = median(results, "limit_s3_get", MACHINE)
        reads = [f"{name}'s redirected pull reached {pull / get:.2f}{X} of it"
                 for name in SERVERS if get and (pull := median(results, "pull", name))]
        writes = [f"{name}'s monolithic push {push / put:.2f}{X}"
                  for name in SERVERS if put and (push := median(results, "monolithic", name))]
        if reads or writes:
            parts += ["Against the S3 server's own PUT and GET: "
                      + "; ".join(writes + reads) + ".", ""]
        floor = median(results, "limit_s3_gc_delete_s", MACHINE)
        with_links = median(results, "limit_s3_gc_delete_links_s", MACHINE)
        distribution_gc = median(results, "gc_offline_s", DISTRIBUTION)
        if floor and distribution_gc:
            sentence = (f"A collector 10{X} faster than distribution's would finish in "
                        f"{fmt(distribution_gc / 10)} s; deleting the blobs alone takes "
                        f"{fmt(floor)} s on this S3 server")
            if with_links:
                sentence += (f", and the blobs with the deleted images' layer links (which "
                             f"dockyard deletes and distribution leaves behind) "
                             f"{fmt(with_links)} s")
            parts += [sentence + ".", ""]
    parts += ["### GC, start-up, memory on S3", "", facts_table(results, S3_FACT_ROWS), ""]
    parts += ["### CPU time on S3 (medians)", "", cpu_table(results, S3_CPU_GROUPS), ""]
    line = backend_cpu_line(results)
    if line:
        parts += [line, ""]
    parts += ["### Method on S3", "", method_text(settings, endpoint, objectstore, gc), ""]
    if results.checks:
        parts += ["### Correctness spot checks on S3 (untimed, passed)", ""]
        parts += [f"- {line}" for line in results.checks]
        parts += [""]
    notes = failure_notes(results, servers)
    if notes:
        parts += ["### Failures and notes on S3", "", notes, ""]
    return "\n".join(parts)


def section_bounds(text: str, heading: str = HEADING) -> tuple[int, int] | None:
    """Where a `## ` section starts and ends (at the next `## ` heading, or the end)."""
    lines = text.splitlines(keepends=True)
    offset = 0
    start = None
    for line in lines:
        if start is None and line.rstrip("\n") == heading:
            start = offset
        elif start is not None and line.startswith("## "):
            return start, offset
        offset += len(line)
    return (start, len(text)) if start is not None else None


def with_section(page: str, section: str, heading: str = HEADING) -> str:
    """The page with `section` in place of its old one (or added at the end)."""
    section = section.rstrip("\n") + "\n"
    bounds = section_bounds(page, heading)
    if bounds is None:
        return (page.rstrip("\n") + "\n\n" if page.strip() else "") + section
    start, end = bounds
    rest = page[end:]
    return page[:start] + section + ("\n" + rest if rest else "")


def kept_section(page: str, heading: str = HEADING) -> str:
    """The S3 section of an existing page, for a filesystem run to carry over."""
    bounds = section_bounds(page, heading)
    return page[bounds[0]:bounds[1]] if bounds else ""

