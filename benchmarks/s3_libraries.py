#!/usr/bin/env python3
"""Which S3 library should dockyard's S3 driver use? obstore and aiobotocore side by side.

    python benchmarks/s3_libraries.py [--rounds 3] [--size-mib 1024] [--backends radosgw,moto]
                                      [--out docs/s3-libraries.md]

Against a private single-host Ceph radosgw (memstore OSD, as the tests start it) and moto's
server, each library does what a registry does: a large blob pushed as a multipart upload
from a Python producer (1 MiB pieces, as an upload's body arrives, 16 MiB parts, 4 in flight),
the blob read back as a stream, small objects put and got by 32 concurrent tasks, a prefix of
many keys listed and then deleted with DeleteObjects (1,000 a request), a server-side copy of
the blob, and presigned GET URLs.  Rounds alternate which library goes first; the tables hold
medians.  curl (SigV4 built in) pushes and pulls the same blob as a baseline of what radosgw
itself allows.  Needs Ceph (ceph-mon, ceph-osd, radosgw, ceph-common), curl, and
``pip install -e '.[test]'`` (moto, obstore, aiobotocore).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.s3 import (
    S3Service,
    botocore_client,
    empty_bucket,
    run_moto,
    run_radosgw,
    start_daemon,
    stop_daemon,
)
from tests.support.server import free_port

MiB = 1 << 20
PIECE = 1 * MiB  # what the producer hands over at a time
PART = 16 * MiB
PARTS_IN_FLIGHT = 4
CONCURRENCY = 32
SMALL_SIZE = 4096  # a manifest or a link file is smaller still
PRESIGNS = 2000


@dataclass
class Scale:
    blob_bytes: int
    small_count: int
    list_count: int


@dataclass
class Sample:
    seconds: float
    cpu: float
    nbytes: int = 0
    ops: int = 0
    latencies: list[float] = field(default_factory=list)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread, Rust's included
    return usage.ru_utime + usage.ru_stime


async def measure(work: Callable[[], Awaitable[Sample]]) -> Sample:
    start_wall, start_cpu = time.perf_counter(), cpu_seconds()
    sample = await work()
    sample.seconds = time.perf_counter() - start_wall
    sample.cpu = cpu_seconds() - start_cpu
    return sample


async def produce(total: int, source: memoryview) -> AsyncIterator[bytes]:
    """An upload's body as a registry receives it: pieces of bytes, yielding to the loop."""
    sent = 0
    while sent < total:
        size = min(PIECE, total - sent)
        yield bytes(source[:size])
        sent += size
        await asyncio.sleep(0)


async def gather_timed(
    count: int, operation: Callable[[int], Awaitable[None]]
) -> list[float]:
    """Run ``operation(0..count-1)`` with CONCURRENCY tasks; each call's latency."""
    latencies: list[float] = []
    queue = iter(range(count))

    async def worker() -> None:
        for number in queue:
            began = time.perf_counter()
            await operation(number)
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return latencies


class Library:
    name = ""

    async def open(self, service: S3Service, bucket: str) -> None: ...
    async def close(self) -> None: ...
    async def put_stream(self, key: str, total: int, source: memoryview) -> None: ...
    async def get_stream(self, key: str) -> int: ...
    async def put_small(self, key: str, body: bytes) -> None: ...
    async def get_small(self, key: str) -> bytes: ...
    async def list_keys(self, prefix: str) -> list[str]: ...
    async def delete_keys(self, keys: list[str]) -> None: ...
    async def copy(self, source: str, target: str, size: int) -> None: ...
    async def copy_multipart(self, source: str, target: str, size: int) -> bool:
        return False  # not offered
    async def presign(self, key: str) -> str: ...


class Obstore(Library):
    name = "obstore"

    async def open(self, service: S3Service, bucket: str) -> None:
        from obstore.store import S3Store

        self.store = S3Store(
            bucket,
            endpoint=service.endpoint,
            access_key_id=service.access_key,
            secret_access_key=service.secret_key,
            region=service.region,
            virtual_hosted_style_request=not service.path_style,
            client_options={"allow_http": True, "timeout": "300s", **self.client_options()},
        )

    def client_options(self) -> dict[str, str]:
        return {}

    async def put_stream(self, key: str, total: int, source: memoryview) -> None:
        import obstore

        await obstore.put_async(
            self.store, key, produce(total, source), chunk_size=PART,
            max_concurrency=PARTS_IN_FLIGHT,
        )

    async def get_stream(self, key: str) -> int:
        import obstore

        result = await obstore.get_async(self.store, key)
        received = 0
        async for chunk in result.stream(min_chunk_size=PIECE):
            received += len(chunk)
        return received

    async def put_small(self, key: str, body: bytes) -> None:
        import obstore

        await obstore.put_async(self.store, key, body)

    async def get_small(self, key: str) -> bytes:
        import obstore

        result = await obstore.get_async(self.store, key)
        return bytes(await result.bytes_async())

    async def list_keys(self, prefix: str) -> list[str]:
        import obstore

        keys: list[str] = []
        async for page in obstore.list(self.store, prefix, chunk_size=1000):
            keys.extend(item["path"] for item in page)
        return keys

    async def delete_keys(self, keys: list[str]) -> None:
        import obstore

        await obstore.delete_async(self.store, keys)  # DeleteObjects, 1,000 a request

    async def copy(self, source: str, target: str, size: int) -> None:
        import obstore

        await obstore.copy_async(self.store, source, target)  # one CopyObject

    async def presign(self, key: str) -> str:
        import obstore

        return obstore.sign(self.store, "GET", key, timedelta(minutes=20))


class ObstoreGivenTheBundle(Obstore):
    """obstore handed the file AWS_CA_BUNDLE names, as a driver could do itself."""

    name = "obstore + root_certificate"

    def client_options(self) -> dict[str, str]:
        return {"root_certificate": Path(os.environ["AWS_CA_BUNDLE"]).read_text()}


class Aiobotocore(Library):
    name = "aiobotocore"

    async def open(self, service: S3Service, bucket: str) -> None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        self.bucket = bucket
        self._exit = ExitStack()
        self._client_context = get_session().create_client(
            "s3",
            endpoint_url=service.endpoint,
            region_name=service.region,
            aws_access_key_id=service.access_key,
            aws_secret_access_key=service.secret_key,
            config=AioConfig(
                s3={"addressing_style": "path" if service.path_style else "virtual"},
                max_pool_connections=CONCURRENCY,
                # radosgw (Ceph 16) refuses the CRC32 trailers botocore >= 1.36 adds.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
        self.client = await self._client_context.__aenter__()

    async def close(self) -> None:
        await self._client_context.__aexit__(None, None, None)

    async def put_stream(self, key: str, total: int, source: memoryview) -> None:
        created = await self.client.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload_id = created["UploadId"]
        slots = asyncio.Semaphore(PARTS_IN_FLIGHT)
        etags: dict[int, str] = {}

        async def send(number: int, body: bytes) -> None:
            try:
                answer = await self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                    Body=body,
                )
                etags[number] = answer["ETag"]
            finally:
                slots.release()

        tasks: list[asyncio.Task[None]] = []
        pending: list[bytes] = []
        buffered = 0
        async for piece in produce(total, source):
            pending.append(piece)
            buffered += len(piece)
            if buffered >= PART:
                await slots.acquire()
                tasks.append(asyncio.create_task(send(len(tasks) + 1, b"".join(pending))))
                pending, buffered = [], 0
        if pending:
            await slots.acquire()
            tasks.append(asyncio.create_task(send(len(tasks) + 1, b"".join(pending))))
        await asyncio.gather(*tasks)
        parts = [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
        await self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )

    async def get_stream(self, key: str) -> int:
        answer = await self.client.get_object(Bucket=self.bucket, Key=key)
        received = 0
        async with answer["Body"] as body:
            async for chunk in body.iter_chunks(PIECE):
                received += len(chunk)
        return received

    async def put_small(self, key: str, body: bytes) -> None:
        await self.client.put_object(Bucket=self.bucket, Key=key, Body=body)

    async def get_small(self, key: str) -> bytes:
        answer = await self.client.get_object(Bucket=self.bucket, Key=key)
        async with answer["Body"] as body:
            return bytes(await body.read())

    async def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        async for page in pages:
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    async def delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            await self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )

    async def copy(self, source: str, target: str, size: int) -> None:
        await self.client.copy_object(
            Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": source}
        )

    async def copy_multipart(self, source: str, target: str, size: int) -> bool:
        """UploadPartCopy, as objects over 5 GiB need: 8 parts, 4 at once."""
        created = await self.client.create_multipart_upload(Bucket=self.bucket, Key=target)
        upload_id = created["UploadId"]
        part_size = max(PART, -(-size // 8))

        async def copy_part(number: int, first: int) -> dict[str, Any]:
            last = min(first + part_size, size) - 1
            answer = await self.client.upload_part_copy(
                Bucket=self.bucket, Key=target, UploadId=upload_id, PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": source},
                CopySourceRange=f"bytes={first}-{last}",
            )
            return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

        slots = asyncio.Semaphore(PARTS_IN_FLIGHT)

        async def limited(number: int, first: int) -> dict[str, Any]:
            async with slots:
                return await copy_part(number, first)

        parts = await asyncio.gather(
            *(limited(n + 1, first) for n, first in enumerate(range(0, size, part_size)))
        )
        await self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=target, UploadId=upload_id,
            MultipartUpload={"Parts": list(parts)},
        )
        return True

    async def presign(self, key: str) -> str:
        url: str = await self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=1200
        )
        return url


LIBRARIES: dict[str, Callable[[], Library]] = {"obstore": Obstore, "aiobotocore": Aiobotocore}


async def one_round(library: Library, service: S3Service, bucket: str, scale: Scale,
                    source: memoryview) -> dict[str, Sample]:
    """Every scenario once, on a prefix of its own that is emptied afterwards."""
    prefix = f"{library.name}-{uuid.uuid4().hex[:8]}/"
    blob, copied = prefix + "blob", prefix + "copied"
    samples: dict[str, Sample] = {}
    await library.open(service, bucket)
    try:
        async def put_blob() -> Sample:
            await library.put_stream(blob, scale.blob_bytes, source)
            return Sample(0, 0, nbytes=scale.blob_bytes)

        async def get_blob() -> Sample:
            received = await library.get_stream(blob)
            assert received == scale.blob_bytes, (received, scale.blob_bytes)
            return Sample(0, 0, nbytes=received)

        async def copy_blob() -> Sample:
            await library.copy(blob, copied, scale.blob_bytes)
            return Sample(0, 0, nbytes=scale.blob_bytes)

        async def copy_blob_multipart() -> Sample:
            done = await library.copy_multipart(blob, copied + "-parts", scale.blob_bytes)
            return Sample(0, 0, nbytes=scale.blob_bytes if done else 0)

        small_body = os.urandom(SMALL_SIZE)

        async def put_small() -> Sample:
            latencies = await gather_timed(
                scale.small_count,
                lambda n: library.put_small(f"{prefix}small/{n}", small_body),
            )
            return Sample(0, 0, ops=scale.small_count, latencies=latencies)

        async def get_small() -> Sample:
            async def get(n: int) -> None:
                assert await library.get_small(f"{prefix}small/{n}") == small_body

            latencies = await gather_timed(scale.small_count, get)
            return Sample(0, 0, ops=scale.small_count, latencies=latencies)

        # The keys to list and delete are made beforehand, untimed.
        await gather_timed(
            scale.list_count, lambda n: library.put_small(f"{prefix}many/{n:06d}", b"l")
        )
        listed: list[str] = []

        async def list_many() -> Sample:
            listed.extend(await library.list_keys(prefix + "many/"))
            assert len(listed) == scale.list_count, len(listed)
            return Sample(0, 0, ops=len(listed))

        async def delete_many() -> Sample:
            await library.delete_keys(listed)
            assert await library.list_keys(prefix + "many/") == []
            return Sample(0, 0, ops=len(listed))

        async def presign() -> Sample:
            url = await library.presign(blob)
            async with httpx.AsyncClient() as http:  # the URL must really work
                answer = await http.get(url, headers={"Range": "bytes=0-15"})
                assert answer.status_code == 206, (answer.status_code, answer.text[:300])
            latencies = []
            for _ in range(PRESIGNS):
                began = time.perf_counter()
                await library.presign(blob)
                latencies.append(time.perf_counter() - began)
            return Sample(0, 0, ops=PRESIGNS, latencies=latencies)

        for name, work in (
            ("put_blob", put_blob), ("get_blob", get_blob), ("copy_blob", copy_blob),
            ("copy_blob_multipart", copy_blob_multipart),
            ("put_small", put_small), ("get_small", get_small), ("list", list_many),
            ("delete", delete_many), ("presign", presign),
        ):
            samples[name] = await measure(work)
    finally:
        await library.close()
        empty_bucket(botocore_client(service), bucket, prefix)
    return samples


def curl_baseline(service: S3Service, bucket: str, scale: Scale, tmp: Path) -> dict[str, float]:
    """radosgw's own pace: one PUT and one GET of the blob by curl, MB/s."""
    blob = tmp / "blob"
    with blob.open("wb") as out:
        out.truncate(0)
        chunk = os.urandom(MiB)
        for _ in range(scale.blob_bytes // MiB):
            out.write(chunk)
    url = f"{service.endpoint}/{bucket}/curl-baseline"
    sign = [
        "--aws-sigv4", f"aws:amz:{service.region}:s3",
        "--user", f"{service.access_key}:{service.secret_key}",
        "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
    ]
    rates = {}
    for name, command in (
        ("put", ["curl", "-sS", "--fail", "-T", str(blob), *sign, url, "-o", "/dev/null"]),
        ("get", ["curl", "-sS", "--fail", *sign, url, "-o", "/dev/null"]),
    ):
        began = time.perf_counter()
        subprocess.run(command, check=True)
        rates[name] = scale.blob_bytes / (time.perf_counter() - began) / 1e6
    blob.unlink()
    botocore_client(service).delete_object(Bucket=bucket, Key="curl-baseline")
    return rates


@contextmanager
def run_moto_tls(tmp: Path) -> Iterator[tuple[S3Service, Path]]:
    """moto over HTTPS with a certificate from a CA of its own; yields the CA's file."""
    import trustme

    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key, ca_file = tmp / "moto-cert.pem", tmp / "moto-key.pem", tmp / "moto-ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    port = free_port()
    process = start_daemon([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port),
                      "-c", str(cert), "-k", str(key)], tmp / "moto-tls.log")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        yield S3Service("moto-tls", f"https://127.0.0.1:{port}", "a", "b"), ca_file
    finally:
        stop_daemon(process)


async def reaches_with_ca_bundle(library: Library, service: S3Service, bucket: str) -> str:
    try:
        await library.open(service, bucket)
        try:
            await library.put_small("ca-bundle-check", b"x")
        finally:
            await library.close()
    except Exception as error:
        return f"no ({type(error).__name__})"
    return "yes"


def ca_bundle_check(tmp: Path, libraries: list[str]) -> dict[str, str]:
    """Does each library trust the CA that AWS_CA_BUNDLE names, with no other setting?"""
    with run_moto_tls(tmp) as (service, ca_file):
        previous = os.environ.get("AWS_CA_BUNDLE")
        os.environ["AWS_CA_BUNDLE"] = str(ca_file)
        import botocore.config
        import botocore.session

        botocore.session.get_session().create_client(
            "s3", endpoint_url=service.endpoint, region_name=service.region,
            aws_access_key_id="a", aws_secret_access_key="b",
            config=botocore.config.Config(s3={"addressing_style": "path"}),
        ).create_bucket(Bucket="ca-bundle")
        try:
            makers = [LIBRARIES[name] for name in libraries]
            if "obstore" in libraries:
                makers.append(ObstoreGivenTheBundle)
            return {maker.name: asyncio.run(reaches_with_ca_bundle(maker(), service,
                                                                   "ca-bundle"))
                    for maker in makers}
        finally:
            if previous is None:
                os.environ.pop("AWS_CA_BUNDLE")
            else:
                os.environ["AWS_CA_BUNDLE"] = previous


def collect_garbage(service: S3Service) -> None:
    """Free what the round deleted now (memstore keeps it in memory until radosgw's GC)."""
    if service.ceph_conf is not None:
        subprocess.run(["radosgw-admin", "-c", str(service.ceph_conf), "gc", "process",
                        "--include-all"], check=True, capture_output=True, timeout=600)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(rounds: list[dict[str, Sample]]) -> dict[str, float]:
    """Medians over rounds: MB/s and CPU s/GiB for blobs, ops/s and latency for the rest."""
    result: dict[str, float] = {}
    for name in rounds[0]:
        samples = [r[name] for r in rounds]
        if not samples[0].nbytes and not samples[0].ops:
            continue  # not offered by this library
        if samples[0].nbytes:
            result[f"{name}_mbps"] = median([s.nbytes / s.seconds / 1e6 for s in samples])
            result[f"{name}_cpu_per_gib"] = median([s.cpu / (s.nbytes / (1 << 30))
                                                    for s in samples])
        else:
            result[f"{name}_ops"] = median([s.ops / s.seconds for s in samples])
            result[f"{name}_cpu_ms_per_k"] = median([s.cpu / s.ops * 1e6 for s in samples])
        if samples[0].latencies:
            result[f"{name}_p50_ms"] = median(
                [statistics.median(s.latencies) * 1000 for s in samples]
            )
    return result


ROWS = (
    ("put_blob_mbps", "blob put, multipart from a producer (MB/s)", "{:.0f}"),
    ("put_blob_cpu_per_gib", "  CPU of the Python process (s/GiB)", "{:.2f}"),
    ("get_blob_mbps", "blob get, streamed (MB/s)", "{:.0f}"),
    ("get_blob_cpu_per_gib", "  CPU (s/GiB)", "{:.2f}"),
    ("copy_blob_mbps", "server-side copy, one CopyObject (MB/s of object)", "{:.0f}"),
    ("copy_blob_multipart_mbps", "server-side copy, UploadPartCopy x 8 (MB/s)", "{:.0f}"),
    ("put_small_ops", "small puts, 32 tasks (objects/s)", "{:.0f}"),
    ("put_small_p50_ms", "  latency median (ms)", "{:.1f}"),
    ("put_small_cpu_ms_per_k", "  CPU (ms per 1,000)", "{:.0f}"),
    ("get_small_ops", "small gets, 32 tasks (objects/s)", "{:.0f}"),
    ("get_small_p50_ms", "  latency median (ms)", "{:.1f}"),
    ("get_small_cpu_ms_per_k", "  CPU (ms per 1,000)", "{:.0f}"),
    ("list_ops", "list a prefix (keys/s)", "{:.0f}"),
    ("delete_ops", "DeleteObjects, 1,000 a request (keys/s)", "{:.0f}"),
    ("presign_p50_ms", "presign a GET URL (median, ms)", "{:.3f}"),
)


def table(results: dict[str, dict[str, float]], libraries: list[str]) -> str:
    lines = ["| | " + " | ".join(libraries) + " |", "| --- |" + " ---: |" * len(libraries)]
    for key, label, fmt in ROWS:
        cells = [fmt.format(results[lib][key]) if key in results[lib] else "n/a"
                 for lib in libraries]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@contextmanager
def start(backend: str, tmp: Path) -> Iterator[S3Service]:
    if backend == "radosgw":
        with run_radosgw(tmp / "radosgw", memstore_bytes=4 << 30) as service:
            yield service
    else:
        with run_moto(tmp / "moto") as service:
            yield service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--backends", default="radosgw,moto")
    parser.add_argument("--libraries", default="obstore,aiobotocore")
    parser.add_argument("--out", type=Path, help="also write the tables to this file")
    args = parser.parse_args()
    libraries = args.libraries.split(",")
    source = memoryview(os.urandom(PIECE))
    report: list[str] = []
    with tempfile.TemporaryDirectory(prefix="s3-libraries-") as scratch:
        for backend in args.backends.split(","):
            # moto keeps objects in Python: a quarter of the sizes is enough for a reference.
            divisor = 1 if backend == "radosgw" else 4
            scale = Scale(args.size_mib * MiB // divisor, args.small // divisor,
                          args.keys // divisor)
            with start(backend, Path(scratch)) as service:
                bucket = f"bench-{uuid.uuid4().hex[:8]}"
                botocore_client(service).create_bucket(Bucket=bucket)
                rounds: dict[str, list[dict[str, Sample]]] = {lib: [] for lib in libraries}
                baselines: list[dict[str, float]] = []
                for number in range(args.rounds):
                    order = libraries if number % 2 == 0 else libraries[::-1]
                    for name in order:
                        samples = asyncio.run(
                            one_round(LIBRARIES[name](), service, bucket, scale, source)
                        )
                        rounds[name].append(samples)
                        collect_garbage(service)
                        print(f"{backend} round {number + 1} {name}: " + ", ".join(
                            f"{k} {v.seconds:.2f}s/{v.cpu:.2f}cpu" for k, v in samples.items()
                        ), flush=True)
                    if backend == "radosgw":
                        baselines.append(curl_baseline(service, bucket, scale, Path(scratch)))
                        collect_garbage(service)
                        print(f"curl: {baselines[-1]}", flush=True)
                results = {lib: summarise(rounds[lib]) for lib in libraries}
            report.append(
                f"### {backend}: blob {scale.blob_bytes // MiB} MiB, {scale.small_count} "
                f"small objects, {scale.list_count} keys; medians of {args.rounds} rounds\n\n"
                + table(results, libraries)
            )
            if baselines:
                report.append(
                    "curl baseline (one PUT, one GET of the blob, UNSIGNED-PAYLOAD): "
                    f"PUT {median([b['put'] for b in baselines]):.0f} MB/s, "
                    f"GET {median([b['get'] for b in baselines]):.0f} MB/s"
                )
        verdicts = ca_bundle_check(Path(scratch), libraries)
        report.append("Trusts the CA named by AWS_CA_BUNDLE (moto over HTTPS): " + ", ".join(
            f"{name} {verdict}" for name, verdict in verdicts.items()))
    text = "\n\n".join(report) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
