"""S3 driver: distribution's object layout in an S3 bucket (AWS, Ceph radosgw, MinIO...).

A path maps to the key `<rootdirectory>/<path>` without a leading slash, as distribution's
s3-aws driver writes it, so either registry serves what the other stored.

What differs from a filesystem, by the nature of an object store:

- There are no directories: a "directory" is a key prefix, there while something is below
  it. An emptied one is gone at once (`prune_many` has nothing to do), and a file may share
  its path with a directory (`/a` and `/a/b` both exist as keys).
- `put_content` and a file `move` replace an object whole (readers see the old or the new
  object); moving a directory moves its objects one by one and is not atomic.
- A `writer` keeps a file being written as one multipart upload that stays open from writer
  to writer (in whichever process), plus a small pending-tail object beside it,
  `<key>~pending`, holding the bytes that do not fill a part yet and, in its metadata, the
  upload's state. Nothing of it shows at the key before `commit` completes the upload there;
  `stat_writer` reads the state. Appending to a whole object reopens it as such an upload
  whose first parts are copied from it inside S3.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import email.utils
import io
import logging
import posixpath
import re
import threading
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dockyard.concurrency import each
from dockyard.storage.driver import (
    FileInfo,
    FileWriter,
    PathNotFound,
    StorageDriver,
    check_path,
    check_root_or_path,
)

MIB = 1024 * 1024
# S3's smallest part (all but the last) and largest part or single copy.
MIN_PART = 5 * MIB
MAX_PART = 5 * 1024 * MIB
MAX_PARTS = 10_000
# Keys a listing or a DeleteObjects request handles at most.
LIST_MAX = 1000
DELETE_BATCH = 1000
# Requests a batch operation (stat_many, delete_many) keeps in flight.
BATCH_CONCURRENCY = 16
# Levels below a tree's top `files_below` looks down for directories to list side by side.
SPLIT_DEPTH = 3
# Paths a `delete_many` has at least before one listing of their shared directory may
# stand for a listing per path.
BULK_DELETE_MIN = 64
# Pieces a download is handed out in (a slow client holds one, and the next read).
READ_PIECE = 256 * 1024
# Connections to S3 that a worker's downloads may hold at once. A download holds its
# connection for as long as its client takes to read, so downloads have a pool of their
# own: sharing the one of every other request (64), 64 slow clients would stall them all.
POOL_CONNECTIONS = 64
DOWNLOAD_CONNECTIONS = 1024
# A file being written keeps its unsent bytes and state in `<key>` + this: "~" is in no
# valid name, so no listing shows it, and deleting the file's directory takes it along.
PENDING_SUFFIX = "~pending"
# A writer's parts double in size every so many parts (from `chunksize`), so 10,000 parts
# reach S3's largest object whatever the size of the upload.
PARTS_PER_SIZE = 1000
_NAME_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_MD5 = re.compile(r"[0-9a-f]{32}")  # a multipart object's ETag has "-<parts>" after it

log = logging.getLogger("dockyard.storage.s3")

# Files directly below a directory: (name, size, modified).
Files = list[tuple[str, int, float]]


@dataclass(frozen=True)
class S3Settings:
    """`storage.s3` of distribution's config, checked (see `dockyard.config`)."""

    bucket: str
    region: str = "us-east-1"
    regionendpoint: str | None = None
    accesskey: str | None = None
    secretkey: str | None = None
    sessiontoken: str | None = None
    # Where presigned blob URLs point (a CDN or another name of the S3 endpoint), else
    # regionendpoint.
    redirectendpoint: str | None = None
    forcepathstyle: bool = False
    rootdirectory: str = ""
    secure: bool = True
    skipverify: bool = False
    v4auth: bool = True
    chunksize: int = 10 * MIB
    multipartcopychunksize: int = 32 * MIB
    multipartcopymaxconcurrency: int = 100
    multipartcopythresholdsize: int = 32 * MIB
    storageclass: str | None = "STANDARD"  # None: the bucket's default ("NONE")
    encrypt: bool = False
    keyid: str | None = None
    objectacl: str = "private"
    useragent: str | None = None
    loglevel: str = "off"
    usedualstack: bool = False
    accelerate: bool = False
    usefipsendpoint: bool = False


def _is_valid_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and set(name) <= _NAME_CHARACTERS


def _error_code(error: Exception) -> str | None:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def _is_not_found(error: Exception) -> bool:
    return _error_code(error) in NOT_FOUND_CODES


def _range_length(value: object) -> int | None:
    """The length of a `bytes=first-last` range, None for any other."""
    if isinstance(value, str) and value.startswith("bytes="):
        first, _, last = value[len("bytes="):].partition("-")
        if first.isdigit() and last.isdigit():
            return int(last) - int(first) + 1
    return None


def _log_request(params: dict[str, Any], model: Any, **_: Any) -> None:
    """One line per S3 request: the operation, its key, and the bytes it sends, reads or
    copies where the request says (a body, a `Range`, a `CopySourceRange`)."""
    body = params.get("Body")
    if isinstance(body, io.BytesIO):  # botocore wraps some bodies before this is called
        body = body.getbuffer()
    size = len(body) if isinstance(body, bytes | bytearray | memoryview) else (
        _range_length(params.get("Range")) or _range_length(params.get("CopySourceRange")))
    log.info("s3 request %s key=%s bytes=%s", model.name, params.get("Key", ""),
             "-" if size is None else size)


def part_size(number: int, first_size: int) -> int:
    """The size of part `number` (from 1) of a writer whose first parts are `first_size`."""
    return min(first_size << ((number - 1) // PARTS_PER_SIZE), MAX_PART)


def parts_end(count: int, first_size: int) -> int:
    """The offset where part `count` ends (and part `count` + 1 begins)."""
    end, done = 0, 0
    while done < count:
        step = min(PARTS_PER_SIZE - done % PARTS_PER_SIZE, count - done)
        end += step * part_size(done + 1, first_size)
        done += step
    return end


def _parse_timestamp(value: str) -> datetime:
    """S3's times: ISO 8601 in listings (thousands a page, which botocore's general parser
    takes most of a listing's CPU to read), HTTP dates in headers."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return email.utils.parsedate_to_datetime(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class _TooManyRequests(Exception):
    pass


class _RequestBudget:
    """Requests a listing may still make (None: no limit)."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit

    def spend(self) -> None:
        if self.left is not None:
            self.left -= 1
            if self.left < 0:
                raise _TooManyRequests


class S3Driver(StorageDriver):
    name = "s3aws"
    # Keys a page of `files_below`'s listings asks for (S3 gives at most 1,000).
    list_page_size = LIST_MAX

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._root = settings.rootdirectory.strip("/")
        # An aiobotocore client belongs to the event loop it was made in: one per loop
        # (a worker has one; a command or a test may run several in turn), plus one for
        # presigning where redirectendpoint names another host, and one for downloads
        # (see DOWNLOAD_CONNECTIONS).
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary())
        self._presigners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary())
        self._downloaders: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary())
        self._contexts: dict[int, Any] = {}
        self._clients_lock = threading.Lock()
        self._session: Any = None
        # "debug": a line per S3 request (operation, key, bytes); the "debugwith..."
        # levels add the AWS SDK's own debug output, which holds whole request bodies.
        self._log_requests = settings.loglevel != "off"
        if settings.loglevel not in ("off", "debug"):
            logging.getLogger("botocore").setLevel(logging.DEBUG)

    # Keys

    def key(self, path: str) -> str:
        """The object key of a driver path (no leading slash), as distribution's driver."""
        return f"{self._root}{path}".lstrip("/") if self._root else path.lstrip("/")

    def _prefix(self, path: str) -> str:
        """The key prefix of everything below `path`."""
        if path == "/":
            return f"{self._root}/" if self._root else ""
        return f"{self.key(path)}/"

    # The client

    async def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is not None:
            return client
        return await self._open_client(self._clients, self.settings.regionendpoint)

    async def _download_client(self) -> Any:
        """The client downloads stream through, with a pool of its own."""
        client = self._downloaders.get(asyncio.get_running_loop())
        if client is not None:
            return client
        return await self._open_client(self._downloaders, self.settings.regionendpoint,
                                       DOWNLOAD_CONNECTIONS)

    async def _presigning_client(self) -> Any:
        """The client whose presigned URLs name `redirectendpoint` (the main one if unset)."""
        if not self.settings.redirectendpoint:
            return await self._client()
        client = self._presigners.get(asyncio.get_running_loop())
        if client is not None:
            return client
        return await self._open_client(self._presigners, self.settings.redirectendpoint)

    async def _open_client(self, clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, Any], endpoint: str | None,
            connections: int = POOL_CONNECTIONS) -> Any:
        loop = asyncio.get_running_loop()
        context = self._new_client_context(endpoint, connections)
        client = await context.__aenter__()
        if self._log_requests:
            client.meta.events.register("before-parameter-build.s3", _log_request)
        with self._clients_lock:
            existing = clients.get(loop)
            if existing is None:
                clients[loop] = client
                self._contexts[id(client)] = context
                return client
        await context.__aexit__(None, None, None)
        return existing

    def _new_client_context(self, endpoint: str | None, connections: int) -> Any:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        settings = self.settings
        if endpoint and "://" not in endpoint:
            endpoint = f"{'https' if settings.secure else 'http'}://{endpoint}"
        config = AioConfig(
            s3={"addressing_style": "path" if settings.forcepathstyle else "auto",
                "use_dualstack_endpoint": settings.usedualstack,
                "use_accelerate_endpoint": settings.accelerate},
            use_fips_endpoint=settings.usefipsendpoint,
            signature_version="s3v4" if settings.v4auth else "s3",
            user_agent_extra=settings.useragent,
            max_pool_connections=connections,
            retries={"max_attempts": 5, "mode": "standard"},
            # No CRC32 trailers (botocore >= 1.36 adds them by default): S3s older than
            # that change, radosgw 16 among them, refuse what they do not know.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        options: dict[str, Any] = {
            "region_name": settings.region,
            "endpoint_url": endpoint or None,
            "use_ssl": settings.secure,
            "config": config,
        }
        if settings.skipverify:
            options["verify"] = False
        if settings.accesskey and settings.secretkey:
            options["aws_access_key_id"] = settings.accesskey
            options["aws_secret_access_key"] = settings.secretkey
            if settings.sessiontoken:
                options["aws_session_token"] = settings.sessiontoken
        with self._clients_lock:
            if self._session is None:
                # One session for every client: it loads S3's service model once.
                self._session = get_session()
                self._session.get_component("response_parser_factory").set_parser_defaults(
                    timestamp_parser=_parse_timestamp)
            session = self._session
        return session.create_client("s3", **options)

    async def close(self) -> None:
        """Close this event loop's clients (others close with their loops)."""
        loop = asyncio.get_running_loop()
        for clients in (self._clients, self._presigners, self._downloaders):
            with self._clients_lock:
                client = clients.pop(loop, None)
                context = self._contexts.pop(id(client), None) if client is not None else None
            if context is not None:
                await context.__aexit__(None, None, None)

    def _object_options(self) -> dict[str, Any]:
        """What every object written gets: content type, ACL, storage class, encryption."""
        settings = self.settings
        options: dict[str, Any] = {"ContentType": "application/octet-stream",
                                   "ACL": settings.objectacl}
        if settings.storageclass is not None:
            options["StorageClass"] = settings.storageclass
        if settings.encrypt:
            options["ServerSideEncryption"] = "aws:kms" if settings.keyid else "AES256"
            if settings.keyid:
                options["SSEKMSKeyId"] = settings.keyid
        return options

    # Reading

    async def _head(self, key: str) -> dict[str, Any] | None:
        client = await self._client()
        try:
            answer: dict[str, Any] = await client.head_object(Bucket=self.bucket, Key=key)
        except Exception as error:
            if _is_not_found(error):
                return None
            raise
        return answer

    async def get_content(self, path: str) -> bytes:
        key = self.key(check_path(path))
        client = await self._client()
        try:
            answer = await client.get_object(Bucket=self.bucket, Key=key)
        except Exception as error:
            if _is_not_found(error):
                raise PathNotFound(path) from None
            raise
        async with answer["Body"] as body:
            return bytes(await body.read())

    async def read(self, path: str, offset: int = 0, length: int | None = None
                   ) -> AsyncIterator[bytes]:
        key = self.key(check_path(path))
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"negative range: {offset}, {length}")
        if length == 0:  # S3 has no empty range: only whether the file is there
            if await self._head(key) is None:
                raise PathNotFound(path)
            return
        last = "" if length is None else str(offset + length - 1)
        client = await self._download_client()
        try:
            answer = await client.get_object(Bucket=self.bucket, Key=key,
                                             Range=f"bytes={offset}-{last}")
        except Exception as error:
            if _is_not_found(error):
                raise PathNotFound(path) from None
            if _error_code(error) == "InvalidRange":  # at or past the end: nothing to read
                return
            raise
        async with answer["Body"] as body:
            async for piece in body.iter_chunks(READ_PIECE):
                if piece:
                    yield bytes(piece)

    async def url_for(self, path: str, expires: float) -> str | None:
        """A presigned GetObject URL of the object (signed here, no request to S3)."""
        key = self.key(check_path(path))
        client = await self._presigning_client()
        url: str = await client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=max(1, int(expires)))
        return url

    async def stat(self, path: str) -> FileInfo | None:
        check_root_or_path(path)
        if path == "/":
            return FileInfo(path, 0, 0.0, True)
        info = await self.stat_file(path)
        if info is not None:
            return info
        client = await self._client()
        answer = await client.list_objects_v2(Bucket=self.bucket, Prefix=self._prefix(path),
                                              MaxKeys=1)
        contents = answer.get("Contents", [])
        if contents:
            return FileInfo(path, 0, contents[0]["LastModified"].timestamp(), True)
        return None

    async def stat_file(self, path: str) -> FileInfo | None:
        if check_root_or_path(path) == "/":
            return None
        head = await self._head(self.key(path))
        if head is None:
            return None
        return FileInfo(path, int(head["ContentLength"]), head["LastModified"].timestamp(),
                        False)

    async def stat_many(self, paths: Sequence[str]) -> Sequence[FileInfo | None]:
        for path in paths:
            check_root_or_path(path)
        return await each(BATCH_CONCURRENCY, self.stat, paths)

    async def _list_page(self, prefix: str) -> AsyncIterator[dict[str, Any]]:
        client = await self._client()
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/",
            PaginationConfig={"PageSize": LIST_MAX})
        async for page in pages:
            yield page

    async def _children(self, path: str) -> tuple[Files, builtins.list[str]]:
        """The files (name, size, modified) and directories directly below `path`."""
        prefix = self._prefix(path)
        files: Files = []
        directories: builtins.list[str] = []
        async for page in self._list_page(prefix):
            for item in page.get("Contents", []):
                name = item["Key"][len(prefix):]
                if _is_valid_name(name):  # keys no driver path can name are not listed
                    files.append((name, int(item["Size"]), item["LastModified"].timestamp()))
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(prefix):-1]
                if _is_valid_name(name):
                    directories.append(name)
        return files, directories

    async def list(self, path: str) -> builtins.list[str]:
        check_root_or_path(path)
        files, directories = await self._children(path)
        if not files and not directories and path != "/":
            raise PathNotFound(path)
        return [name for name, _, _ in files] + directories

    async def files_below(self, path: str) -> Sequence[FileInfo]:
        """Every key below `path` a driver path can name, with the ETag of each as its
        content MD5 where it has an MD5's form (see `_objects_below`)."""
        prefix = self._prefix(check_root_or_path(path))
        base = path.rstrip("/")
        found: builtins.list[FileInfo] = []
        for item in await self._objects_below(prefix, _RequestBudget(None)):
            relative = item["Key"][len(prefix):]
            if not all(_is_valid_name(name) for name in relative.split("/")):
                continue  # keys no driver path can name are not listed
            etag = str(item.get("ETag", "")).strip('"').lower()
            found.append(FileInfo(f"{base}/{relative}", int(item["Size"]),
                                  item["LastModified"].timestamp(), False,
                                  etag if _MD5.fullmatch(etag) else None))
        return found

    async def _objects_below(self, prefix: str, budget: _RequestBudget
                             ) -> builtins.list[dict[str, Any]]:
        """Every object whose key starts with `prefix` (a directory's, ending in "/").

        A flat listing gives 1,000 keys a request but is one request after another; so
        the tree's top directories (a level or two down, until there are enough) are split
        into `BATCH_CONCURRENCY` runs of neighbours, each listed flat at the same time as
        the others. Spending more than the budget raises _TooManyRequests."""
        # Most trees (a repository, a small store) fit in one page: one request.
        found, truncated = await self._first_page(prefix, budget)
        if not truncated:
            return found
        done_until = found[-1]["Key"]

        def add(item: dict[str, Any]) -> None:
            if item["Key"] > done_until:
                found.append(item)

        # Directories to list flat, as key prefixes ending in "/"; files found on the way.
        frontier = [prefix]
        for _ in range(SPLIT_DEPTH):
            if len(frontier) >= BATCH_CONCURRENCY:
                break
            levels = await each(BATCH_CONCURRENCY, lambda at: self._level(at, budget),
                                frontier)
            frontier = []
            for items, directories in levels:
                for item in items:
                    add(item)
                frontier.extend(directories)
        frontier.sort()
        count = -(-len(frontier) // BATCH_CONCURRENCY) if frontier else 0
        runs = [frontier[start:start + count] for start in range(0, len(frontier), count or 1)]

        async def list_run(number: int) -> builtins.list[dict[str, Any]]:
            run = runs[number]
            stop = runs[number + 1][0] if number + 1 < len(runs) else None
            members = set(run)
            depth = run[0].count("/")
            items: builtins.list[dict[str, Any]] = []
            if stop is not None and stop <= done_until:
                return items  # all in the first page
            start_after = max(run[0][:-1], done_until)
            async for item in self._flat_listing(prefix, start_after, stop, budget):
                key = item["Key"]
                if "/".join(key.split("/")[:depth]) + "/" in members:
                    items.append(item)
            return items

        for items in await each(BATCH_CONCURRENCY, list_run, range(len(runs))):
            for item in items:
                add(item)
        return found

    async def _first_page(self, prefix: str, budget: _RequestBudget
                          ) -> tuple[builtins.list[dict[str, Any]], bool]:
        """The first page of keys below a prefix, and whether there are more."""
        client = await self._client()
        budget.spend()
        page = await client.list_objects_v2(Bucket=self.bucket, Prefix=prefix,
                                            MaxKeys=self.list_page_size)
        items: builtins.list[dict[str, Any]] = page.get("Contents", [])
        return items, bool(page.get("IsTruncated")) and bool(items)

    async def _level(self, prefix: str, budget: _RequestBudget
                     ) -> tuple[builtins.list[dict[str, Any]], builtins.list[str]]:
        """The keys directly below a prefix, and its directories (as prefixes)."""
        client = await self._client()
        items: builtins.list[dict[str, Any]] = []
        directories: builtins.list[str] = []
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/",
            PaginationConfig={"PageSize": self.list_page_size})
        async for page in pages:
            budget.spend()
            items.extend(page.get("Contents", []))
            directories.extend(common["Prefix"] for common in page.get("CommonPrefixes", []))
        return items, directories

    async def _flat_listing(self, prefix: str, start_after: str, stop: str | None,
                            budget: _RequestBudget) -> AsyncIterator[dict[str, Any]]:
        """Keys below `prefix` after `start_after`, until one at or past `stop`."""
        client = await self._client()
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, StartAfter=start_after,
            PaginationConfig={"PageSize": self.list_page_size})
        async for page in pages:
            budget.spend()
            for item in page.get("Contents", []):
                if stop is not None and item["Key"] >= stop:
                    return
                yield item

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        """As the interface's, with one listing per directory (sizes and times come with
        it) rather than a request per file."""
        check_root_or_path(path)
        files, directories = await self._children(path)
        entries: dict[str, FileInfo] = {}
        base = path.rstrip("/")
        for name, size, modified in files:
            entries[name] = FileInfo(f"{base}/{name}", size, modified, False)
        for name in directories:
            # A name both a file and a directory shows once, as the file, then its tree.
            entries.setdefault(name, FileInfo(f"{base}/{name}", 0, 0.0, True))
        for name in sorted(entries):
            info = entries[name]
            yield info
            if info.is_dir or name in directories:
                async for below in self.walk(info.path):
                    yield below

    # Writing

    async def put_content(self, path: str, data: bytes) -> None:
        key = self.key(check_path(path))
        client = await self._client()
        await client.put_object(Bucket=self.bucket, Key=key, Body=data,
                                **self._object_options())

    async def writer(self, path: str) -> FileWriter:
        kept = await self.reopen(path)
        if kept is not None:
            return kept
        return S3Writer(self, self.key(path), WriterState.new(self.settings.chunksize))

    async def new_writer(self, path: str) -> FileWriter:
        return S3Writer(self, self.key(check_path(path)),
                        WriterState.new(self.settings.chunksize))

    async def reopen(self, path: str) -> FileWriter | None:
        """From the pending tail's state, else from the object itself."""
        key = self.key(check_path(path))
        pending = await self._head(key + PENDING_SUFFIX)
        if pending is not None:
            return S3Writer(self, key, WriterState.of_pending(key, pending))
        head = await self._head(key)
        if head is None:
            return None
        return S3Writer(self, key, WriterState.of_object(key, head, self.settings.chunksize))

    async def stat_writer(self, path: str) -> FileInfo | None:
        """What the pending-tail object records, else the object itself."""
        key = self.key(check_path(path))
        pending = await self._head(key + PENDING_SUFFIX)
        if pending is None:
            return await self.stat(path)
        state = WriterState.of_pending(key, pending)
        return FileInfo(path, state.size, pending["LastModified"].timestamp(), False)

    async def move(self, source: str, destination: str) -> None:
        check_path(source)
        check_path(destination)
        head = await self._head(self.key(source))
        if head is not None:
            if source != destination:
                await self._copy(self.key(source), self.key(destination),
                                 int(head["ContentLength"]), head["ETag"])
                await self._delete_keys([self.key(source)])
            return
        keys = await self._keys_below(source)
        if not keys:
            raise PathNotFound(source)
        if destination == source:
            return
        if destination.startswith(f"{source}/"):
            raise OSError(f"cannot move {source} below itself")
        # One object after another: a directory has no single object to replace atomically.
        source_prefix = self._prefix(source)
        target_prefix = self._prefix(destination)

        async def copy_one(key_and_size: tuple[str, int]) -> None:
            key, size = key_and_size
            await self._copy(key, target_prefix + key[len(source_prefix):], size, None)

        await each(BATCH_CONCURRENCY, copy_one, keys)
        await self._delete_keys([key for key, _ in keys])

    async def _copy(self, source: str, target: str, size: int, etag: str | None) -> None:
        """Copy an object inside S3: one CopyObject up to the threshold, else in parts."""
        settings = self.settings
        client = await self._client()
        copy_source = {"Bucket": self.bucket, "Key": source}
        if size <= min(settings.multipartcopythresholdsize, MAX_PART):
            condition = {"CopySourceIfMatch": etag} if etag else {}
            try:
                await client.copy_object(Bucket=self.bucket, Key=target,
                                         CopySource=copy_source, **condition,
                                         **self._object_options())
            except Exception as error:
                if _is_not_found(error):
                    raise PathNotFound(source) from None
                raise
            return
        upload_id = (await client.create_multipart_upload(
            Bucket=self.bucket, Key=target, **self._object_options()))["UploadId"]
        try:
            part_size = max(settings.multipartcopychunksize, -(-size // MAX_PARTS))
            ranges = [(first, min(size, first + part_size) - 1)
                      for first in range(0, size, part_size)]

            async def copy_range(numbered: tuple[int, tuple[int, int]]) -> dict[str, Any]:
                number, (first, last) = numbered
                return await self._copy_part(target, upload_id, number, source, first, last,
                                             etag)

            parts = await each(settings.multipartcopymaxconcurrency, copy_range,
                                enumerate(ranges, start=1))
            await client.complete_multipart_upload(
                Bucket=self.bucket, Key=target, UploadId=upload_id,
                MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(Exception):
                await client.abort_multipart_upload(Bucket=self.bucket, Key=target,
                                                    UploadId=upload_id)
            raise

    async def _copy_part(self, key: str, upload_id: str, number: int, source: str,
                         first: int, last: int, etag: str | None) -> dict[str, Any]:
        client = await self._client()
        condition = {"CopySourceIfMatch": etag} if etag else {}
        answer = await client.upload_part_copy(
            Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
            CopySource={"Bucket": self.bucket, "Key": source},
            CopySourceRange=f"bytes={first}-{last}", **condition)
        return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

    # Deleting

    async def _keys_below(self, path: str) -> builtins.list[tuple[str, int]]:
        """Every key strictly below `path`, with its size."""
        client = await self._client()
        found: builtins.list[tuple[str, int]] = []
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._prefix(path),
            PaginationConfig={"PageSize": LIST_MAX})
        async for page in pages:
            found.extend((item["Key"], int(item["Size"])) for item in page.get("Contents", []))
        return found

    async def _keys_of(self, path: str) -> builtins.list[str]:
        """The key of `path` (if it is a file) and every key below it, from one listing."""
        key = self.key(path)
        client = await self._client()
        found: builtins.list[str] = []
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=key, PaginationConfig={"PageSize": LIST_MAX})
        async for page in pages:
            # "/a" must not take "/ab" with it.
            found.extend(item["Key"] for item in page.get("Contents", [])
                         if item["Key"] in (key, key + PENDING_SUFFIX)
                         or item["Key"].startswith(f"{key}/"))
        return found

    async def _delete_keys(self, keys: Sequence[str]) -> None:
        client = await self._client()

        async def delete_batch(batch: Sequence[str]) -> None:
            answer = await client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})
            errors = [error for error in answer.get("Errors", [])
                      if error.get("Code") not in NOT_FOUND_CODES]
            if errors:
                first = errors[0]
                raise OSError(f"S3 refused to delete {len(errors)} objects, "
                              f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}")

        batches = [keys[start:start + DELETE_BATCH] for start in range(0, len(keys),
                                                                        DELETE_BATCH)]
        await each(BATCH_CONCURRENCY, delete_batch, batches)

    async def _abort_uploads_of(self, path: str) -> None:
        """Abort the multipart uploads of `path` and below: those writers kept open and
        those a writer that died left (S3 keeps, and bills, their parts until then)."""
        client = await self._client()
        key = self.key(path)
        pages = client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=key)
        async for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Key"] != key and not upload["Key"].startswith(f"{key}/"):
                    continue
                with contextlib.suppress(Exception):
                    await client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])

    async def delete(self, path: str) -> None:
        check_path(path)
        keys = await self._keys_of(path)
        if not keys:
            raise PathNotFound(path)
        # Abort first: a writer's upload must not outlive its pending tail.
        if any(key != self.key(path) for key in keys):
            await self._abort_uploads_of(path)
        await self._delete_keys(keys)

    async def delete_many(self, paths: Sequence[str]) -> None:
        for path in paths:
            check_path(path)
        keys = await self._keys_of_many(paths) if len(paths) >= BULK_DELETE_MIN else None
        if keys is None:
            found = await each(BATCH_CONCURRENCY, self._keys_of, paths)
            keys = sorted({key for keys in found for key in keys})
        await self._delete_keys(keys)

    async def _keys_of_many(self, paths: Sequence[str]) -> builtins.list[str] | None:
        """The keys of many paths from listings of the directory they share, where that
        costs fewer requests than a listing per path (None: it would not)."""
        parent = posixpath.commonpath([posixpath.dirname(path) for path in paths])
        prefix = self._prefix(parent)
        try:
            objects = await self._objects_below(prefix, _RequestBudget(len(paths) // 4))
        except _TooManyRequests:
            return None
        # Every key of a path or below it, whatever its name (as `_keys_of`).
        wanted = {self.key(path) for path in paths}
        keys = []
        for item in objects:
            key = ancestor = item["Key"]
            while ancestor and ancestor not in wanted:
                ancestor = ancestor.rpartition("/")[0]
            if ancestor:
                keys.append(key)
        return keys

    async def prune_many(self, paths: Sequence[str], stop: str) -> None:
        """Nothing to do: a prefix with nothing below it is no directory at all."""


@dataclass
class WriterState:
    """Where a file being written stands: `parts` full parts sent to multipart upload
    `upload_id`, whose first parts are `first_part` bytes (see `part_size`), then the bytes
    past them, `size` in all. Those bytes are read from `source` (a key, its ETag, and the
    offset in it where they begin) until a writer loads them."""

    size: int
    parts: int
    first_part: int
    upload_id: str | None
    source: tuple[str, str, int] | None
    pending_exists: bool
    whole_object: bool = False  # `source` is the file itself, not yet an upload

    @classmethod
    def new(cls, chunksize: int) -> WriterState:
        return cls(0, 0, max(chunksize, MIN_PART), None, None, False)

    @classmethod
    def of_pending(cls, key: str, head: dict[str, Any]) -> WriterState:
        """The state a pending-tail object records (in its metadata; its body holds the
        bytes past the parts)."""
        meta = head.get("Metadata", {})
        try:
            size = int(meta["dockyard-size"])
            parts = int(meta["dockyard-parts"])
            first_part = int(meta["dockyard-first-part"])
        except (KeyError, ValueError):
            raise OSError(f"{key}{PENDING_SUFFIX} is no pending tail dockyard wrote") from None
        upload_id = meta.get("dockyard-upload-id") or None
        if size - parts_end(parts, first_part) != int(head["ContentLength"]):
            raise OSError(f"{key}{PENDING_SUFFIX} does not hold the {size} bytes it records")
        return cls(size, parts, first_part, upload_id, (key + PENDING_SUFFIX, head["ETag"], 0),
                   True)

    @classmethod
    def of_object(cls, key: str, head: dict[str, Any], chunksize: int) -> WriterState:
        return cls(int(head["ContentLength"]), 0, max(chunksize, MIN_PART), None,
                   (key, head["ETag"], 0), False, whole_object=True)

    def metadata(self) -> dict[str, str]:
        return {"dockyard-size": str(self.size), "dockyard-parts": str(self.parts),
                "dockyard-first-part": str(self.first_part),
                "dockyard-upload-id": self.upload_id or ""}


class S3Writer(FileWriter):
    """Appends to a file through one multipart upload that stays open from writer to writer
    and is completed by `commit`; parts are aligned (see `part_size`), so each writer sends
    only the parts its own bytes fill. The bytes past the last full part live in the pending
    tail (`<key>~pending`), rewritten by `close` with the state in its metadata. A writer
    holds at most about one part in memory, and costs a read and a write of the tail plus
    its own bytes, however large the file.

    The tail is the state's only record and changes only at `close`: a writer that dies
    leaves the file as the last `close` did (parts it sent past that are overwritten by the
    next writer, or left out at commit). `truncate` back to the opening size hence needs
    nothing but forgetting this writer's parts."""

    def __init__(self, driver: S3Driver, key: str, state: WriterState) -> None:
        self._driver = driver
        self._key = key
        self._pending_key = key + PENDING_SUFFIX
        self._state = state
        self._opened = WriterState(**vars(state))
        self._buffer = bytearray()
        self._loaded = state.source is None
        self._changed = False
        self._closed = False

    @property
    def size(self) -> int:
        return self._state.size

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("write to a closed FileWriter")

    def _buffer_start(self) -> int:
        return parts_end(self._state.parts, self._state.first_part)

    async def _load(self) -> None:
        """Bring the bytes past the last full part into the buffer (a whole object being
        appended to first becomes an upload, its full parts copied inside S3)."""
        if self._loaded:
            return
        state = self._state
        assert state.source is not None
        source, etag, first = state.source
        if state.whole_object:
            await self._adopt_whole_object(source, etag)
            source, etag, first = state.source
        start = self._buffer_start()
        length = state.size - start
        data = b""
        if length:
            client = await self._driver._client()
            answer = await client.get_object(
                Bucket=self._driver.bucket, Key=source, IfMatch=etag,
                Range=f"bytes={first}-{first + length - 1}")
            async with answer["Body"] as body:
                data = bytes(await body.read())
            if len(data) != length:
                raise OSError(f"{source} changed while being appended to")
        self._buffer = bytearray(data)
        self._loaded = True

    async def _adopt_whole_object(self, key: str, etag: str) -> None:
        """Copy a whole object's full parts into a new upload (once, then the pending tail
        carries on), so that its last bytes can be read into the buffer."""
        state = self._state
        while parts_end(state.parts + 1, state.first_part) <= state.size:
            first = parts_end(state.parts, state.first_part)
            last = parts_end(state.parts + 1, state.first_part) - 1
            upload_id = await self._upload_id()
            await self._driver._copy_part(self._key, upload_id, state.parts + 1, key,
                                          first, last, etag)
            state.parts += 1
        state.whole_object = False
        state.source = (key, etag, parts_end(state.parts, state.first_part))
        self._opened = WriterState(**vars(state))
        self._changed = True  # the upload and the tail now stand for the file

    async def _upload_id(self) -> str:
        if self._state.upload_id is None:
            client = await self._driver._client()
            answer = await client.create_multipart_upload(
                Bucket=self._driver.bucket, Key=self._key, **self._driver._object_options())
            self._state.upload_id = answer["UploadId"]
        return self._state.upload_id

    async def _send_part(self, number: int, data: bytes) -> str:
        if number > MAX_PARTS:
            raise OSError(f"{self._key}: more than {MAX_PARTS} parts")
        upload_id = await self._upload_id()
        client = await self._driver._client()
        answer = await client.upload_part(Bucket=self._driver.bucket, Key=self._key,
                                          UploadId=upload_id, PartNumber=number, Body=data)
        return str(answer["ETag"])

    async def write(self, data: bytes) -> None:
        self._check_open()
        if not data:
            return
        await self._load()
        state = self._state
        self._buffer += data
        state.size += len(data)
        self._changed = True
        while len(self._buffer) >= (full := part_size(state.parts + 1, state.first_part)):
            with memoryview(self._buffer) as view:
                part = bytes(view[:full])  # one copy (a bytearray slice would be two)
            await self._send_part(state.parts + 1, part)
            del part, self._buffer[:full]
            state.parts += 1

    async def truncate(self, size: int) -> None:
        self._check_open()
        state = self._state
        if size < 0:
            raise ValueError(f"negative size: {size}")
        if size >= state.size:
            return
        if size == self._opened.size:
            # Back to how the writer found the file; parts it sent past that are overwritten
            # by later writes or left out at commit.
            upload_id = state.upload_id
            self._state = WriterState(**vars(self._opened))
            self._state.upload_id = upload_id
            self._buffer = bytearray()
            self._loaded = self._state.source is None
            self._changed = upload_id != self._opened.upload_id
            return
        if state.whole_object and not self._loaded:
            state.size = size  # its parts are copied from the object only up to `size`
            self._changed = True
            return
        await self._load()
        start = self._buffer_start()
        if size < start:
            await self._remake_cut(size)
            return
        del self._buffer[size - start:]
        state.size = size
        self._changed = True

    async def _remake_cut(self, size: int) -> None:
        """Cut into bytes already sent, which S3 cannot read back before completion: make
        the file whole, then start again from its first `size` bytes (copied inside S3).
        Costly, but a broken chunk is only ever cut back to the opening size."""
        await self._finish()
        head = await self._driver._head(self._key)
        if head is None:
            raise PathNotFound(self._key)
        self._state = WriterState.of_object(self._key, head, self._state.first_part)
        self._opened = WriterState(**vars(self._state))
        self._state.size = size
        self._buffer = bytearray()
        self._loaded = False
        self._changed = True

    async def close(self) -> None:
        """Rewrite the pending tail: the bytes past the last full part, and the state."""
        if self._closed:
            return
        self._closed = True
        if not self._changed and (self._state.pending_exists or self._state.whole_object):
            return
        await self._load()
        client = await self._driver._client()
        await client.put_object(Bucket=self._driver.bucket, Key=self._pending_key,
                                Body=bytes(self._buffer), Metadata=self._state.metadata(),
                                **self._driver._object_options())
        self._buffer = bytearray()

    async def commit(self) -> None:
        """Complete the upload at the key (one PUT if it never filled a part), then drop
        the pending tail."""
        self._check_open()
        self._closed = True
        await self._finish()

    async def commit_to(self, destination: str) -> bool:
        """One PUT of the whole file at `destination` where no part was sent (nor an upload
        opened), then the pending tail dropped; else nothing (False)."""
        target = self._driver.key(check_path(destination))
        self._check_open()
        state = self._state
        if state.parts or state.upload_id is not None or state.whole_object:
            return False
        await self._load()
        client = await self._driver._client()
        await client.put_object(Bucket=self._driver.bucket, Key=target,
                                Body=bytes(self._buffer), **self._driver._object_options())
        self._closed = True
        self._buffer = bytearray()
        if state.pending_exists or self._opened.pending_exists:
            await client.delete_object(Bucket=self._driver.bucket, Key=self._pending_key)
        state.pending_exists = False
        return True

    async def _finish(self) -> None:
        state = self._state
        if state.whole_object and not self._changed:
            return  # the object already is the file
        await self._load()
        client = await self._driver._client()
        bucket = self._driver.bucket
        if state.parts == 0:
            await client.put_object(Bucket=bucket, Key=self._key, Body=bytes(self._buffer),
                                    **self._driver._object_options())
            if state.upload_id is not None:
                await self._abort(state.upload_id)
        else:
            await self._complete(await self._upload_id())
        self._buffer = bytearray()
        if state.pending_exists or self._opened.pending_exists:
            await client.delete_object(Bucket=bucket, Key=self._pending_key)
        state.upload_id = None
        state.pending_exists = False

    async def _sent_parts(self, upload_id: str) -> dict[int, tuple[str, int]]:
        """Every part the upload holds: number -> (ETag, size)."""
        client = await self._driver._client()
        parts: dict[int, tuple[str, int]] = {}
        pages = client.get_paginator("list_parts").paginate(
            Bucket=self._driver.bucket, Key=self._key, UploadId=upload_id)
        async for page in pages:
            for part in page.get("Parts", []):
                parts[int(part["PartNumber"])] = (part["ETag"], int(part["Size"]))
        return parts

    async def _complete(self, upload_id: str) -> None:
        state = self._state
        client = await self._driver._client()
        try:
            sent = await self._sent_parts(upload_id)
        except Exception as error:
            # A commit that completed the upload but died before dropping the pending
            # tail: the object is already the file.
            head = await self._driver._head(self._key)
            # (radosgw answers NoSuchKey for an upload completed, S3 NoSuchUpload.)
            if _error_code(error) in {"NoSuchUpload", *NOT_FOUND_CODES} and head is not None \
                    and int(head["ContentLength"]) == state.size:
                return
            raise
        last = state.parts + 1 if self._buffer else state.parts
        if max(sent, default=0) > last:
            # Parts a broken chunk sent past the end: radosgw refuses a completion that
            # leaves any out, so the file is made again without them.
            await self._rebuild(upload_id, sent)
            return
        if self._buffer:
            sent[last] = (await self._send_part(last, bytes(self._buffer)), len(self._buffer))
        missing = [number for number in range(1, last + 1) if number not in sent]
        if missing:
            raise OSError(f"{self._key}: parts {missing[:5]} of the upload are missing")
        await client.complete_multipart_upload(
            Bucket=self._driver.bucket, Key=self._key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": number, "ETag": sent[number][0]}
                                       for number in range(1, last + 1)]})

    async def _rebuild(self, upload_id: str, sent: dict[int, tuple[str, int]]) -> None:
        """Complete the upload with every part it holds, then copy the file's full parts
        back from that into a new upload, add the buffer and complete again."""
        state = self._state
        client = await self._driver._client()
        bucket = self._driver.bucket
        numbers = sorted(sent)
        if numbers != list(range(1, len(numbers) + 1)) or any(
                sent[number][1] < MIN_PART for number in numbers[:-1]):
            raise OSError(f"{self._key}: the upload's parts cannot be put together")
        answer = await client.complete_multipart_upload(
            Bucket=bucket, Key=self._key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": number, "ETag": sent[number][0]}
                                       for number in numbers]})
        etag = answer.get("ETag") or (await self._driver._head(self._key) or {}).get("ETag")
        state.upload_id = None
        new_id = await self._upload_id()
        settings = self._driver.settings

        async def copy(number: int) -> dict[str, Any]:
            first = parts_end(number - 1, state.first_part)
            last = parts_end(number, state.first_part) - 1
            return await self._driver._copy_part(self._key, new_id, number, self._key,
                                                 first, last, etag)

        parts = await each(settings.multipartcopymaxconcurrency, copy,
                            range(1, state.parts + 1))
        if self._buffer:
            number = state.parts + 1
            parts.append({"PartNumber": number,
                          "ETag": await self._send_part(number, bytes(self._buffer))})
        await client.complete_multipart_upload(
            Bucket=bucket, Key=self._key, UploadId=new_id, MultipartUpload={"Parts": parts})

    async def _abort(self, upload_id: str) -> None:
        client = await self._driver._client()
        with contextlib.suppress(Exception):
            await client.abort_multipart_upload(Bucket=self._driver.bucket, Key=self._key,
                                                UploadId=upload_id)
