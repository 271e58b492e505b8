"""Files written to S3 a part at a time, kept open from writer to writer (see `S3Writer`)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Protocol

from dockyard.concurrency import each
from dockyard.storage.driver import FileWriter, PathNotFound, check_path
from dockyard.storage.s3.requests import error_code
from dockyard.storage.s3.settings import (
    MAX_PART,
    MAX_PARTS,
    MIN_PART,
    NOT_FOUND_CODES,
    PARTS_PER_SIZE,
    PENDING_SUFFIX,
    S3Settings,
)


class ObjectStore(Protocol):
    """What a writer needs of the driver that opened it (the driver imports this module, so
    the writer names the few things it uses rather than the driver's class)."""

    bucket: str
    settings: S3Settings

    def key(self, path: str) -> str: ...

    async def _client(self) -> Any: ...

    async def _head(self, key: str) -> dict[str, Any] | None: ...

    async def _copy_part(self, key: str, upload_id: str, number: int, source: str,
                         first: int, last: int, etag: str | None) -> dict[str, Any]: ...

    def _object_options(self) -> dict[str, Any]: ...


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

    def __init__(self, driver: ObjectStore, key: str, state: WriterState) -> None:
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
            if error_code(error) in {"NoSuchUpload", *NOT_FOUND_CODES} and head is not None \
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

