"""S3 driver: distribution's object layout in an S3 bucket (AWS, Ceph radosgw, MinIO...).

A path maps to the key `<rootdirectory>/<path>` without a leading slash, as distribution's
s3-aws driver writes it, so either registry serves what the other stored.

What differs from a filesystem, by the nature of an object store:

- There are no directories: a "directory" is a key prefix, there while something is below
  it. An emptied one is gone at once (`prune_many` has nothing to do), and a file may share
  its path with a directory (`/a` and `/a/b` both exist as keys).
- `put_content` and a file `move` replace an object whole (readers see the old or the new
  object); moving a directory moves its objects one by one and is not atomic.
- A `writer` shows nothing new before `close`, which makes the object whole. Appending to an
  object reopens it as a multipart upload whose first part is the existing object, copied
  inside S3 (or, when it is smaller than S3's smallest part, read back into memory).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

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
# Pieces a download is handed out in (a slow client holds one, and the next read).
READ_PIECE = 256 * 1024
# Connections to S3 that a worker's downloads may hold at once. A download holds its
# connection for as long as its client takes to read, so downloads have a pool of their
# own: sharing the one of every other request (64), 64 slow clients would stall them all.
POOL_CONNECTIONS = 64
DOWNLOAD_CONNECTIONS = 1024
_NAME_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})

log = logging.getLogger("dockyard.storage.s3")

# Files directly below a directory: (name, size, modified).
Files = list[tuple[str, int, float]]
T = TypeVar("T")
A = TypeVar("A")


@dataclass(frozen=True)
class S3Settings:
    """`storage.s3` of distribution's config, checked (see `dockyard.config`)."""

    bucket: str
    region: str = "us-east-1"
    regionendpoint: str | None = None
    accesskey: str | None = None
    secretkey: str | None = None
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


async def _each(limit: int, work: Callable[[A], Awaitable[T]], items: Iterable[A]) -> list[T]:
    """`work` of every item, with at most `limit` in flight; results in order."""
    slots = asyncio.Semaphore(limit)

    async def run(item: A) -> T:
        async with slots:
            return await work(item)

    return list(await asyncio.gather(*(run(item) for item in items)))


class S3Driver(StorageDriver):
    name = "s3aws"

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._root = settings.rootdirectory.strip("/")
        # An aiobotocore client belongs to the event loop it was made in: one per loop
        # (a worker has one; a command or a test may run several in turn), and one more
        # per loop for downloads (see DOWNLOAD_CONNECTIONS).
        self._clients: dict[bool, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]] \
            = {False: weakref.WeakKeyDictionary(), True: weakref.WeakKeyDictionary()}
        self._contexts: dict[int, Any] = {}
        self._clients_lock = threading.Lock()
        if settings.loglevel != "off":
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

    async def _client(self, downloads: bool = False) -> Any:
        loop = asyncio.get_running_loop()
        clients = self._clients[downloads]
        client = clients.get(loop)
        if client is not None:
            return client
        context = self._new_client_context(
            DOWNLOAD_CONNECTIONS if downloads else POOL_CONNECTIONS)
        client = await context.__aenter__()
        with self._clients_lock:
            existing = clients.get(loop)
            if existing is None:
                clients[loop] = client
                self._contexts[id(client)] = context
                return client
        await context.__aexit__(None, None, None)
        return existing

    def _new_client_context(self, connections: int) -> Any:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        settings = self.settings
        endpoint = settings.regionendpoint
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
        return get_session().create_client("s3", **options)

    async def close(self) -> None:
        """Close this event loop's clients (others close with their loops)."""
        loop = asyncio.get_running_loop()
        for clients in self._clients.values():
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
        client = await self._client(downloads=True)
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
        client = await self._client()
        url: str = await client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=max(1, int(expires)))
        return url

    async def stat(self, path: str) -> FileInfo | None:
        check_root_or_path(path)
        if path == "/":
            return FileInfo(path, 0, 0.0, True)
        head = await self._head(self.key(path))
        if head is not None:
            return FileInfo(path, int(head["ContentLength"]),
                            head["LastModified"].timestamp(), False)
        client = await self._client()
        answer = await client.list_objects_v2(Bucket=self.bucket, Prefix=self._prefix(path),
                                              MaxKeys=1)
        contents = answer.get("Contents", [])
        if contents:
            return FileInfo(path, 0, contents[0]["LastModified"].timestamp(), True)
        return None

    async def stat_many(self, paths: Sequence[str]) -> Sequence[FileInfo | None]:
        for path in paths:
            check_root_or_path(path)
        return await _each(BATCH_CONCURRENCY, self.stat, paths)

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
        key = self.key(check_path(path))
        head = await self._head(key)
        if head is None:
            return S3Writer(self, key, 0, None)
        return S3Writer(self, key, int(head["ContentLength"]), head["ETag"])

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

        await _each(BATCH_CONCURRENCY, copy_one, keys)
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

            parts = await _each(settings.multipartcopymaxconcurrency, copy_range,
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
                         if item["Key"] == key or item["Key"].startswith(f"{key}/"))
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
        await _each(BATCH_CONCURRENCY, delete_batch, batches)

    async def _abort_uploads_below(self, path: str) -> None:
        """Abort multipart uploads a writer that died left below `path` (S3 keeps, and
        bills, their parts until then)."""
        client = await self._client()
        pages = client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self._prefix(path))
        async for page in pages:
            for upload in page.get("Uploads", []):
                with contextlib.suppress(Exception):
                    await client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])

    async def delete(self, path: str) -> None:
        check_path(path)
        keys = await self._keys_of(path)
        if not keys:
            raise PathNotFound(path)
        await self._delete_keys(keys)
        if any(key != self.key(path) for key in keys):
            await self._abort_uploads_below(path)

    async def delete_many(self, paths: Sequence[str]) -> None:
        for path in paths:
            check_path(path)
        found = await _each(BATCH_CONCURRENCY, self._keys_of, paths)
        keys = sorted({key for keys in found for key in keys})
        await self._delete_keys(keys)

    async def prune_many(self, paths: Sequence[str], stop: str) -> None:
        """Nothing to do: a prefix with nothing below it is no directory at all."""


class S3Writer(FileWriter):
    """Appends to one object through a multipart upload, holding at most about one part
    (`chunksize`) in memory, and makes the object whole on `close`.

    The object as it was when opened (`base` bytes, of ETag `base_etag`) stays untouched
    until `close`: it becomes the upload's first part, copied inside S3 when it is at least
    S3's smallest part, else read back into the buffer before the first write. So cutting
    back to within it (`truncate` of a failed chunk) only starts the parts again.
    """

    def __init__(self, driver: S3Driver, key: str, base: int, base_etag: str | None) -> None:
        self._driver = driver
        self._key = key
        self._base = base  # bytes still only in the original object, none in parts/buffer
        self._base_etag = base_etag
        self._existed = base_etag is not None
        self._source_size = base  # bytes of the object as it stands in S3 (ETag base_etag)
        self._size = base
        self._buffer = bytearray()
        self._buffer_start = base  # offset of the buffer's first byte
        self._upload_id: str | None = None
        self._parts: list[tuple[int, str, int]] = []  # (number, ETag, size)
        self._changed = False
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("write to a closed FileWriter")

    async def _load_small_base(self) -> None:
        """Bring an original object too small to be a part into the buffer."""
        if 0 < self._base < MIN_PART:
            client = await self._driver._client()
            answer = await client.get_object(
                Bucket=self._driver.bucket, Key=self._key, Range=f"bytes=0-{self._base - 1}",
                IfMatch=self._base_etag)
            async with answer["Body"] as body:
                data = bytes(await body.read())
            if len(data) != self._base:
                raise OSError(f"{self._key} changed while being appended to")
            self._buffer[0:0] = data
            self._buffer_start = 0
            self._base = 0

    async def _start_parts(self) -> None:
        """The multipart upload, with the original object copied in as its first parts."""
        client = await self._driver._client()
        if self._upload_id is None:
            answer = await client.create_multipart_upload(
                Bucket=self._driver.bucket, Key=self._key, **self._driver._object_options())
            self._upload_id = answer["UploadId"]
        if self._base >= MIN_PART and not self._parts:
            count = -(-self._base // MAX_PART)
            piece = -(-self._base // count)  # even pieces, each well above MIN_PART
            for first in range(0, self._base, piece):
                last = min(self._base, first + piece) - 1
                number = len(self._parts) + 1
                part = await self._driver._copy_part(
                    self._key, self._upload_id, number, self._key, first, last,
                    self._base_etag)
                self._parts.append((number, part["ETag"], last - first + 1))
            self._base = 0

    async def _send_part(self, data: bytes) -> None:
        await self._start_parts()
        assert self._upload_id is not None
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise OSError(f"{self._key}: more than {MAX_PARTS} parts; raise chunksize")
        client = await self._driver._client()
        answer = await client.upload_part(Bucket=self._driver.bucket, Key=self._key,
                                          UploadId=self._upload_id, PartNumber=number,
                                          Body=data)
        self._parts.append((number, answer["ETag"], len(data)))

    async def write(self, data: bytes) -> None:
        self._check_open()
        if not data:
            return
        await self._load_small_base()
        self._buffer += data
        self._size += len(data)
        self._changed = True
        chunk = self._driver.settings.chunksize
        while len(self._buffer) >= chunk:
            await self._send_part(bytes(self._buffer[:chunk]))
            del self._buffer[:chunk]
            self._buffer_start += chunk

    async def truncate(self, size: int) -> None:
        self._check_open()
        if size < 0:
            raise ValueError(f"negative size: {size}")
        if size >= self._size:
            return
        self._changed = True
        if size >= self._buffer_start:
            del self._buffer[size - self._buffer_start:]
        else:
            await self._restart_from(size)
        self._size = size

    async def _restart_from(self, size: int) -> None:
        """Start again from the first `size` bytes of the object. Parts already sent cannot
        be left out of a completion (radosgw refuses one that omits any), nor read back: if
        the object as opened holds those bytes the upload is dropped, else what was written
        is first made whole, and the cut copied back from that."""
        if size > self._source_size:
            await self._complete()
            head = await self._driver._head(self._key)
            if head is None:
                raise PathNotFound(self._key)
            self._base_etag = head["ETag"]
            self._source_size = int(head["ContentLength"])
            self._existed = True
        else:
            await self._abort()
        self._parts = []
        self._buffer.clear()
        self._base = size
        self._buffer_start = size

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._changed and self._existed:
            return
        await self._complete()

    async def _complete(self) -> None:
        """Make the object what was written: one PUT when it all fits in the buffer, else
        the last part and the multipart upload's completion."""
        client = await self._driver._client()
        bucket = self._driver.bucket
        await self._load_small_base()
        try:
            if not self._parts and self._base == 0:
                await client.put_object(Bucket=bucket, Key=self._key, Body=bytes(self._buffer),
                                        **self._driver._object_options())
                await self._abort()
            else:
                await self._start_parts()
                if self._buffer or not self._parts:
                    await self._send_part(bytes(self._buffer))
                assert self._upload_id is not None
                await client.complete_multipart_upload(
                    Bucket=bucket, Key=self._key, UploadId=self._upload_id,
                    MultipartUpload={"Parts": [{"PartNumber": number, "ETag": etag}
                                               for number, etag, _ in self._parts]})
                self._upload_id = None
        except BaseException:
            await self._abort()
            raise
        self._buffer.clear()

    async def _abort(self) -> None:
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        client = await self._driver._client()
        with contextlib.suppress(Exception):
            await client.abort_multipart_upload(Bucket=self._driver.bucket, Key=self._key,
                                                UploadId=upload_id)
