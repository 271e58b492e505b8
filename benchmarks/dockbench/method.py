"""The report's method section: how every number was taken."""

from __future__ import annotations

from .common import MiB
from .scenarios_downloads import describe_slow
from .scenarios_gc import FLOOR_PROCESSES
from .settings import Settings
from .storegen import deleted_share


def method_text(s: Settings) -> str:
    rounds = f"{s.rounds} round" + ("s" if s.rounds != 1 else "")
    blob = f"{s.blob_size // MiB} MiB"
    limit = f"{s.limit_size // MiB} MiB"
    index_kind = ("a PostgreSQL database, migrated before the start" if s.index == "postgres"
                  else "SQLite")
    paragraphs = [
        "`benchmarks/run.py` starts `docker-registry serve` (distribution 2.8.2) and "
        "`python -m dockyard serve` on free 127.0.0.1 ports, each with its own temporary "
        "filesystem storage root (`$TMP/...`) and the same config.yml (version 0.1, filesystem "
        "storage, deletes enabled, log level warn, access log disabled); otherwise each runs "
        "with its defaults (Go's default GOGC for distribution, dockyard's default worker "
        f"count). Every scenario runs against both servers interleaved, {rounds} (GC: "
        f"{s.gc_rounds}), flipping which server goes first each round, and the report shows "
        "medians. Before every timed run `sync` flushes earlier writes, and the run waits for "
        "the shared machine to go quiet (see the CPU table). One short untimed warm-up pass "
        "of the blob, manifest and skopeo scenarios precedes round 1. Correctness checks are "
        "untimed and listed below.",
        f"**Blobs.** The {blob} blob is random bytes generated once; before each push the blob "
        "is removed from the server's store so every push writes it anew; in round 1 the "
        "stored file (after each push) and a full GET (after the pull) are hashed against the "
        "digest. The monolithic push times POST plus one `PUT ?digest=` whose body `curl -T` "
        "streams from the file; the chunked push times POST, `PATCH` requests of "
        f"{s.chunk_size // MiB} MiB with `Content-Range` (sendfile(2) over one keep-alive "
        "connection, following each Location) and the closing PUT; the pull times "
        "`curl -o /dev/null` of the blob.",
        f"**Machine limits**, once per round in the same run: `hashlib.sha256` over {limit} of "
        f"16 MiB buffers (one core); writing {limit} in 4 MiB chunks and then `fsync` to a "
        "file in the work directory (the filesystem of the stores); and nginx-light "
        "(`sendfile on`, one worker per core) serving the same blob file from disk to the same "
        "`curl -o /dev/null`. A push has to hash and write every byte, so "
        "min(sha256, disk) bounds it; nginx bounds a pull from disk.",
        "**Manifests.** GET throughput and p99 come from `wrk --latency "
        f"-t{s.wrk_threads} -c{s.wrk_connections} -d{s.wrk_duration}s` with an OCI/Docker "
        "Accept header, against a tagged OCI image manifest. wrk 4.1 cannot measure HEAD (it "
        "waits for the body a HEAD response never sends, wrk issue #198), so HEAD uses "
        f"`ab -k -i -c{s.wrk_connections} -t{s.wrk_duration}` (p99 from its CSV percentiles; "
        "ab is single-threaded, so compare HEAD across servers, not with GET). Any non-2xx "
        "answer or socket error fails the run.",
        "**Auth.** Two more instances of each server run guarded: one with "
        "`auth: {htpasswd: {realm, path}}` and a bcrypt entry of cost 5 (`htpasswd -B`'s "
        "default), one with `auth: {token: {realm, service, issuer, rootcertbundle}}`, the "
        "bundle being the self-signed certificate of an RSA 2048 key generated for the run "
        "(`cryptography`). Its tokens are JWTs signed RS256 with that key (PyJWT), valid for "
        "24 hours, with libtrust's key id as `kid` (which distribution looks keys up by); the "
        "one wrk sends grants `pull` on the benchmark repository (dockyard checks a token's "
        "signature once per worker and remembers it). Each round runs the wrk manifest GET "
        "against the server without auth and then, back to back, against the guarded one, "
        "sending `Authorization: Basic` or `Authorization: Bearer` on every request; the cost is "
        "1 - (req/s with auth ÷ req/s without), per round and kind, each paired with its own "
        "unguarded run. Untimed: no credentials and wrong ones (a wrong password; a token of "
        "another key, for another repository or for another service) get 401, the right "
        "ones 200.",
        f"**Small blobs.** {s.small_blobs:,} random blobs of 1-16 KiB (new ones every round, the "
        "same sizes for both servers) are pushed into one repository by "
        f"{s.small_clients} concurrent keep-alive connections of a small asyncio HTTP client "
        "(POST, then monolithic `PUT ?digest=`), then pulled back with GETs the same way "
        "(every length checked; a sample hashed untimed afterwards). blobs/s is blobs ÷ wall "
        "time.",
        "**skopeo.** An OCI layout of "
        f"{s.layer_count} gzip layers of {s.layer_size // MiB} MiB random content (fresh every "
        "run) is pushed with `skopeo copy oci:DIR:v1 docker://127.0.0.1:PORT/...` and copied "
        "back into a fresh OCI directory.",
        f"**Concurrent downloads.** A {s.download_size // MiB} MiB random blob is pushed once "
        "to one more server per side (default worker count; checked by a hashed GET). Before "
        "every run, untimed, the server is restarted and warmed by 8 downloads (so each run "
        "starts from the same idle state, the blob in the page cache), its RSS read, and each "
        "of its processes' VmHWM reset (`clear_refs` 5). Then "
        f"{s.download_clients} clients open connections at once and GET the blob: *fast*, "
        "each read as fast as an asyncio client can (every body counted to its "
        "Content-Length; MB/s is all bytes ÷ the time from the first connect to the last "
        f"byte); *slow*, {describe_slow(s.slow_seconds)}, then closing "
        "before the end. Peak RSS is the sum of each process's VmHWM over the server's "
        "process tree (an upper bound: each process's own peak), next to the largest sum of "
        "VmRSS sampled every 0.1 s (a lower bound); growth per connection is (peak - RSS "
        "before) ÷ clients. The benchmark raises its open-files limit to the hard limit when "
        "the clients need it; the servers inherit it.",
        f"**Tags list and catalog.** One store of {s.repositories:,} repositories is written "
        "directly on disk in distribution's layout (blobs, `_layers`, `_manifests/revisions`, "
        "`_manifests/tags/<tag>/{current,index}` links) from Python, once: one repository "
        f"with {s.tags:,} tags (an image each), the others one tagged image each. Each server "
        "gets its own `cp -a` copy and is started on it; the time until /v2/ answers is the "
        "start-up time. dockyard then builds its index of the store in the background "
        f"({index_kind}"
        "; its log says when, and how long it took): the measurements start once it is "
        "done. Tags list: wrk "
        f"`-c{s.list_connections}` of `GET /v2/<name>/tags/list` (the full list; untimed "
        "check that every tag is in it). Catalog: sequential GETs of "
        f"`/v2/_catalog?n={s.repositories}` on one keep-alive connection for "
        f"{s.wrk_duration} s (time per request, median) and wrk `-c{s.list_connections}` of the "
        "same URL (req/s); then a walk of every page of `?n=100`, following the `Link` "
        "header (`last=`), timed in total. Untimed: the full catalog and the walk both list "
        "exactly the store's repositories in order.",
        f"**Garbage collection.** A store of {s.gc_repositories:,} repositories, each one image "
        "(config + 4 layers of 1-4 KiB: one base layer shared from a pool of 20, three of its "
        "own), is written on disk once. For each variant and round it is copied afresh, the "
        f"server starts on it, and {deleted_share(s.gc_delete_every)} is deleted with `DELETE "
        "/v2/<name>/manifests/<digest>` (untimed). Then: distribution's "
        "`docker-registry garbage-collect CONFIG` with the registry stopped; "
        "`python -m dockyard garbage-collect --grace-period 0 --json CONFIG` with the server "
        "stopped; and the same while the server runs and two clients GET manifests of kept "
        "images by tag every 10 ms (their success rate is reported); and the same again "
        "with `REGISTRY_STORAGE_INDEX_SOLEWRITER=true` in the collector's environment, so it "
        "sweeps the index's record of what the deletes changed instead of the whole store "
        "(the store was written by Python in distribution's layout and indexed by dockyard "
        "at start, so the index records no uploads). The wall time of the "
        "collector command (process start included) is the metric. Blob data files are "
        "counted on disk before and after, and compared with the blobs only deleted images "
        "used and with what each collector reports; then (server restarted if stopped) a few "
        "kept images are fetched and every blob hashed, and deleted ones must answer 404. "
        "Each round also times the disk's share alone, on one more fresh copy (no server "
        "involved): `rm -rf` of exactly the blob directories only deleted images used, split "
        f"over {FLOOR_PROCESSES} processes started together.",
        "**Memory.** A sampler reads /proc every 0.5 s: the peak of the sum of VmRSS over each "
        "server's process tree, and each process's VmHWM. Idle RSS per process is read 2 s "
        "after dockyard's main server answered /v2/, before any load.",
        "Client and servers share the machine's cores, so the client's own CPU use is part "
        "of every number, equally for both servers.",
    ]
    return "\n\n".join(paragraphs)
