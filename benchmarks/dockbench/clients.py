"""HTTP clients: a keep-alive http.client wrapper (sendfile for bodies), curl, wrk and ab."""

from __future__ import annotations

import hashlib
import http.client
import re
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .common import HOST, BenchError


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


class Client:
    def __init__(
        self, port: int, timeout: float = 600.0, headers: dict[str, str] | None = None
    ) -> None:
        self.port = port
        self.timeout = timeout
        self.default_headers = dict(headers or {})
        self.conn = http.client.HTTPConnection(HOST, port, timeout=timeout)

    def close(self) -> None:
        self.conn.close()

    def _finish(self) -> Response:
        resp = self.conn.getresponse()
        body = resp.read()
        headers = {key.lower(): value for key, value in resp.getheaders()}
        return Response(resp.status, headers, body)

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        try:
            self.conn.request(
                method, target, body=body, headers={**self.default_headers, **(headers or {})}
            )
            return self._finish()
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            raise BenchError(f"{method} {target}: {exc!r}") from exc

    def send_file(
        self,
        method: str,
        target: str,
        handle: BinaryIO,
        offset: int,
        count: int,
        headers: dict[str, str],
    ) -> Response:
        """Send `count` bytes of a file as the body with sendfile(2): the client stays cheap."""
        try:
            self.conn.putrequest(method, target, skip_accept_encoding=True)
            for key, value in {**self.default_headers, **headers}.items():
                self.conn.putheader(key, value)
            self.conn.putheader("Content-Length", str(count))
            self.conn.endheaders()
            sock = self.conn.sock
            assert sock is not None
            try:
                sent = sock.sendfile(handle, offset, count)
            except (BrokenPipeError, ConnectionResetError):
                sent = -1  # the server answered early; read what it said
            response = self._finish()
            if sent != count and response.status < 400:
                raise BenchError(f"{method} {target}: sent {sent} of {count} bytes")
            return response
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            raise BenchError(f"{method} {target}: {exc!r}") from exc


def location_target(location: str) -> str:
    """Path and query of a Location header (absolute or relative)."""
    parts = urllib.parse.urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def with_digest(target: str, digest: str) -> str:
    return target + ("&" if "?" in target else "?") + "digest=" + urllib.parse.quote(digest)


def expect(response: Response, statuses: tuple[int, ...], what: str) -> Response:
    if response.status not in statuses:
        raise BenchError(f"{what}: HTTP {response.status} {response.body[:300]!r}")
    return response


def start_upload(client: Client, repo: str) -> str:
    response = expect(
        client.request("POST", f"/v2/{repo}/blobs/uploads/", body=b""), (202,), "POST upload"
    )
    location = response.header("location")
    if not location:
        raise BenchError("POST upload: no Location header")
    return location_target(location)


def upload_bytes(client: Client, repo: str, data: bytes) -> str:
    """Untimed helper: POST + monolithic PUT of a small blob. Returns the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    target = start_upload(client, repo)
    expect(
        client.request(
            "PUT",
            with_digest(target, digest),
            body=data,
            headers={"Content-Type": "application/octet-stream"},
        ),
        (201,),
        "PUT blob",
    )
    return digest


def check_blob(client: Client, repo: str, digest: str, size: int) -> None:
    """HEAD of the blob says it is there with that size. distribution on S3 redirects HEAD
    too (307 to the object's presigned URL): that says the blob is there."""
    response = expect(
        client.request("HEAD", f"/v2/{repo}/blobs/{digest}"), (200, 307), "HEAD blob"
    )
    if response.status == 307:
        if not response.header("location"):
            raise BenchError("HEAD blob: 307 without a Location")
        return
    length = response.header("content-length")
    if length and int(length) != size:
        raise BenchError(f"HEAD blob: Content-Length {length}, expected {size}")


def run_curl(args: list[str], timeout: float) -> tuple[str, str]:
    try:
        done = subprocess.run(
            ["curl", "-sS", "--max-time", str(int(timeout)), *args],
            capture_output=True,
            text=True,
            timeout=timeout + 30,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"curl timed out after {timeout:.0f}s") from exc
    if done.returncode != 0:
        raise BenchError(f"curl exit {done.returncode}: {done.stderr.strip()[:300]}")
    return done.stdout, done.stderr


def curl_download(url: str, expected_size: int, follow: bool = False) -> float:
    """GET a URL into /dev/null with curl (`follow`: following redirects, as `curl -L`);
    MB/s. The size and final status are checked."""
    started = time.perf_counter()
    options = ["-L"] if follow else []
    stdout, _ = run_curl(
        [*options, "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url], 900
    )
    elapsed = time.perf_counter() - started
    fields = stdout.split()
    if len(fields) != 2 or fields[0] != "200" or int(fields[1]) != expected_size:
        raise BenchError(f"GET: expected 200 and {expected_size} bytes, got {stdout.strip()!r}")
    return expected_size / elapsed / 1e6


# ---- wrk and ApacheBench

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(output: str) -> dict[str, float]:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\b", output, re.MULTILINE)
    total = re.search(r"(\d+) requests in", output)
    if not (rate and p99 and total):
        raise BenchError(f"could not parse wrk output:\n{output}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    bad = int(non2xx.group(1)) if non2xx else 0
    socket_errors = sum(int(x) for x in errors.groups()) if errors else 0
    if int(total.group(1)) == 0:
        raise BenchError(f"wrk completed no request:\n{output}")
    if bad or socket_errors:
        raise BenchError(
            f"wrk saw {bad} non-2xx responses and {socket_errors} socket errors "
            f"of {total.group(1)} requests:\n{output}"
        )
    return {
        "rps": float(rate.group(1)),
        "p99_ms": float(p99.group(1)) * UNITS_MS[p99.group(2)],
        "requests": float(total.group(1)),
    }


def run_wrk(
    url: str,
    headers: dict[str, str],
    script_path: Path,
    duration: int,
    threads: int,
    connections: int,
    timeout_s: int = 5,
) -> dict[str, float]:
    """GET `url` under wrk --latency with the given request headers."""
    lines = ['wrk.method = "GET"']
    lines += [f'wrk.headers["{key}"] = "{value}"' for key, value in headers.items()]
    script_path.write_text("\n".join(lines) + "\n")
    argv = [
        "wrk",
        "--latency",
        "-t",
        str(min(threads, connections)),
        "-c",
        str(connections),
        "-d",
        f"{duration}s",
        "--timeout",
        f"{timeout_s}s",
        "-s",
        str(script_path),
        url,
    ]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration + 60, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError("wrk did not finish in time") from exc
    if done.returncode != 0:
        raise BenchError(f"wrk exit {done.returncode}: {done.stderr.strip()[:300]}")
    return parse_wrk(done.stdout)


def parse_ab(output: str, csv_text: str) -> dict[str, float]:
    rate = re.search(r"Requests per second:\s+([\d.]+)", output)
    complete = re.search(r"Complete requests:\s+(\d+)", output)
    failed = re.search(r"Failed requests:\s+(\d+)", output)
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", output)
    p99 = re.search(r"^99,([\d.]+)$", csv_text, re.MULTILINE)
    if not (rate and complete and failed and p99):
        raise BenchError(f"could not parse ab output:\n{output}")
    if int(complete.group(1)) == 0:
        raise BenchError(f"ab completed no request:\n{output}")
    bad = int(failed.group(1)) + (int(non2xx.group(1)) if non2xx else 0)
    if bad:
        raise BenchError(f"ab saw {bad} failed or non-2xx responses:\n{output}")
    return {"rps": float(rate.group(1)), "p99_ms": float(p99.group(1))}


def run_ab_head(
    url: str, accept: str, csv_path: Path, duration: int, connections: int
) -> dict[str, float]:
    """HEAD under ApacheBench: wrk 4.1 cannot parse responses to HEAD (it waits for a body of
    Content-Length bytes; wrk issue #198)."""
    csv_path.unlink(missing_ok=True)
    argv = [
        "ab",
        "-q",
        "-k",
        "-i",
        "-c",
        str(connections),
        "-t",
        str(duration),
        "-n",
        "100000000",  # after -t, so the time limit is what ends the run
        "-s",
        "5",
        "-e",
        str(csv_path),
        "-H",
        f"Accept: {accept}",
        url,
    ]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration + 60, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError("ab did not finish in time") from exc
    if done.returncode != 0:
        raise BenchError(f"ab exit {done.returncode}: {(done.stderr or done.stdout)[-300:]}")
    csv_text = csv_path.read_text() if csv_path.exists() else ""
    return parse_ab(done.stdout, csv_text)
