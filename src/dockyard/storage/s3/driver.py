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
import logging
import posixpath
import re
import threading
import weakref
from collections.abc import AsyncIterator, Sequence
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
from dockyard.storage.s3.requests import (
    error_code,
    is_not_found,
    log_request,
    parse_timestamp,
)
from dockyard.storage.s3.settings import (
    BATCH_CONCURRENCY,
    BULK_DELETE_MIN,
    BULK_KEYS_PER_PATH,
    DELETE_BATCH,
    DELETE_SPREAD_MIN,
    DOWNLOAD_CONNECTIONS,
    LIST_MAX,
    MAX_PART,
    MAX_PARTS,
    NAME_CHARACTERS,
    NOT_FOUND_CODES,
    PENDING_SUFFIX,
    POOL_CONNECTIONS,
    READ_PIECE,
    SPLIT_DEPTH,
    S3Settings,
)
from dockyard.storage.s3.writer import S3Writer, WriterState

_MD5 = re.compile(r"[0-9a-f]{32}")  # a multipart object's ETag has "-<parts>" after it

# Files directly below a directory: (name, size, modified).
Files = list[tuple[str, int, float]]


def is_valid_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and set(name) <= NAME_CHARACTERS



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
            client.meta.events.register("before-parameter-build.s3", log_request)
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
                    timestamp_parser=parse_timestamp)
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
            if is_not_found(error):
                return None
            raise
        return answer

    async def get_content(self, path: str) -> bytes:
        key = self.key(check_path(path))
        client = await self._client()
        try:
            answer = await client.get_object(Bucket=self.bucket, Key=key)
        except Exception as error:
            if is_not_found(error):
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
            if is_not_found(error):
                raise PathNotFound(path) from None
            if error_code(error) == "InvalidRange":  # at or past the end: nothing to read
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
                if is_valid_name(name):  # keys no driver path can name are not listed
                    files.append((name, int(item["Size"]), item["LastModified"].timestamp()))
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(prefix):-1]
                if is_valid_name(name):
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
            if not all(is_valid_name(name) for name in relative.split("/")):
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
                if is_not_found(error):
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

        size = min(DELETE_BATCH, max(DELETE_SPREAD_MIN, -(-len(keys) // BATCH_CONCURRENCY)))
        batches = [keys[start:start + size] for start in range(0, len(keys), size)]
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

    async def delete_files(self, paths: Sequence[str]) -> None:
        await self._delete_keys(sorted({self.key(check_path(path)) for path in paths}))

    async def delete_lone_files(self, paths: Sequence[str]) -> None:
        await self.delete_files(paths)

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
        directory holds not many more keys than the paths do (None: it holds more, and a
        listing per path costs less than reading all of them)."""
        parent = posixpath.commonpath([posixpath.dirname(path) for path in paths])
        prefix = self._prefix(parent)
        try:
            pages = 1 + len(paths) * BULK_KEYS_PER_PATH // LIST_MAX
            objects = await self._objects_below(prefix, _RequestBudget(pages))
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

