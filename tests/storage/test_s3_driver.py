"""What the S3 driver does beyond the contract suite: distribution's keys, multipart appends
that hold about one part in memory and continue from another process, truncation in every
place a cut can fall, server-side copies, and batches larger than one S3 request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from dockyard.storage import PathNotFound
from dockyard.storage.s3 import MAX_PART, MAX_PARTS, MIN_PART, S3Driver, part_size, parts_end
from tests.support.drivers import s3_settings
from tests.support.s3 import S3Bucket, botocore_client

pytestmark = pytest.mark.anyio

CHUNK = MIN_PART  # the smallest part S3 takes, so files span parts at little cost


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def driver(s3_bucket: S3Bucket) -> AsyncIterator[S3Driver]:
    driver = S3Driver(s3_settings(s3_bucket, chunksize=CHUNK))
    yield driver
    await driver.close()


def pattern(size: int, seed: int = 0) -> bytes:
    block = bytes((seed + n * 7 + n // 251) % 256 for n in range(65521))
    return (block * (size // len(block) + 1))[:size]


def keys(bucket: S3Bucket) -> list[str]:
    client = botocore_client(bucket.service)
    listed = client.list_objects_v2(Bucket=bucket.bucket, Prefix=bucket.prefix)
    return sorted(item["Key"][len(bucket.prefix):] for item in listed.get("Contents", []))


def uploads_in_progress(bucket: S3Bucket) -> list[dict[str, Any]]:
    client = botocore_client(bucket.service)
    listed = client.list_multipart_uploads(Bucket=bucket.bucket, Prefix=bucket.prefix)
    uploads: list[dict[str, Any]] = listed.get("Uploads", [])
    return uploads


async def test_keys_are_distributions(s3_bucket: S3Bucket) -> None:
    """`<rootdirectory>/docker/registry/v2/...` without a leading slash, with or without a
    root directory, as distribution's s3-aws driver writes them."""
    path = "/docker/registry/v2/repositories/library/x/_layers/sha256/ab/link"
    rooted = S3Driver(s3_settings(s3_bucket, rootdirectory=f"/{s3_bucket.prefix}sub/"))
    await rooted.put_content(path, b"sha256:ab")
    assert keys(s3_bucket) == [f"sub{path}"]
    bare = S3Driver(s3_settings(s3_bucket, rootdirectory=""))
    assert bare.key(path) == path[1:]
    assert await bare.get_content(f"/{s3_bucket.prefix}sub{path}") == b"sha256:ab"
    assert await rooted.list("/") == ["docker"]
    await rooted.close()
    await bare.close()


async def test_writer_sends_parts_as_it_goes(driver: S3Driver, s3_bucket: S3Bucket) -> None:
    """No more than about one part is held: the rest is already in S3 as parts."""
    data = pattern(3 * CHUNK + 1000)
    writer = await driver.writer("/_uploads/u/data")
    for start in range(0, len(data), 1024 * 1024):
        await writer.write(data[start:start + 1024 * 1024])
    [upload] = uploads_in_progress(s3_bucket)
    client = botocore_client(s3_bucket.service)
    parts = client.list_parts(Bucket=s3_bucket.bucket, Key=upload["Key"],
                              UploadId=upload["UploadId"])["Parts"]
    assert [part["Size"] for part in parts] == [CHUNK] * 3
    assert writer.size == len(data)
    await writer.commit()
    assert await driver.get_content("/_uploads/u/data") == data
    assert uploads_in_progress(s3_bucket) == []


@pytest.mark.parametrize("first", [1000, CHUNK + 1000, 2 * CHUNK])
async def test_writer_continues_what_another_process_wrote(s3_bucket: S3Bucket,
                                                           first: int) -> None:
    """Each chunk of an upload may come to another worker: a second driver (as another
    process has) sees the size written and appends after it, whether the object is smaller
    than a part (read back) or larger (copied inside S3)."""
    data = pattern(first + CHUNK + 777, seed=5)
    one = S3Driver(s3_settings(s3_bucket, chunksize=CHUNK))
    writer = await one.writer("/up/data")
    await writer.write(data[:first])
    await writer.close()
    await one.close()

    other = S3Driver(s3_settings(s3_bucket, chunksize=CHUNK))
    again = await other.writer("/up/data")
    assert again.size == first
    await again.write(data[first:])
    await again.commit()
    assert await other.get_content("/up/data") == data
    info = await other.stat("/up/data")
    assert info is not None and info.size == len(data)
    assert uploads_in_progress(s3_bucket) == []
    await other.close()


@pytest.mark.parametrize(
    ("opened", "written", "cut"),
    [
        (0, 3 * CHUNK + 10, 3 * CHUNK + 4),   # inside the buffer
        (0, 3 * CHUNK + 10, 2 * CHUNK),       # on a part boundary
        (0, 3 * CHUNK + 10, CHUNK + 5),       # inside a part already sent
        (1000, 2 * CHUNK, 1000),              # back to a small object as opened
        (1000, 2 * CHUNK, 10),                # inside a small object as opened
        (CHUNK + 9, 2 * CHUNK, CHUNK + 9),    # back to a large object as opened
        (CHUNK + 9, 2 * CHUNK, CHUNK + 3),    # inside a large object as opened
        (CHUNK + 9, 2 * CHUNK, 100),          # to less than a part, from a large object
    ],
)
async def test_truncate_wherever_the_cut_falls(driver: S3Driver, s3_bucket: S3Bucket,
                                               opened: int, written: int, cut: int) -> None:
    """A failed chunk is cut off wherever it ends, and writing then goes on from there."""
    path = "/_uploads/t/data"
    data = pattern(opened + written, seed=9)
    if opened:
        await driver.put_content(path, data[:opened])
    writer = await driver.writer(path)
    await writer.write(data[opened:])
    await writer.truncate(cut)
    assert writer.size == cut
    tail = pattern(CHUNK + 33, seed=11)
    await writer.write(tail)
    await writer.commit()
    assert await driver.get_content(path) == data[:cut] + tail
    assert uploads_in_progress(s3_bucket) == []


async def test_truncate_without_writing_more(driver: S3Driver) -> None:
    await driver.put_content("/f", pattern(CHUNK + 50))
    writer = await driver.writer("/f")
    await writer.truncate(CHUNK + 10)
    await writer.commit()
    assert await driver.get_content("/f") == pattern(CHUNK + 10)


async def test_delete_of_an_upload_aborts_what_a_dead_writer_left(
        driver: S3Driver, s3_bucket: S3Bucket) -> None:
    """A writer whose process died leaves a multipart upload that S3 keeps (and bills);
    deleting the upload's directory aborts it."""
    await driver.put_content("/repo/_uploads/u/startedat", b"now")
    writer = await driver.writer("/repo/_uploads/u/data")
    await writer.write(pattern(CHUNK + 1))  # one part sent, then the process "dies"
    assert len(uploads_in_progress(s3_bucket)) == 1
    await driver.delete("/repo/_uploads/u")
    assert uploads_in_progress(s3_bucket) == []
    assert keys(s3_bucket) == []


async def test_move_of_a_large_file_copies_in_parts(s3_bucket: S3Bucket) -> None:
    """Above `multipartcopythresholdsize` a move is an UploadPartCopy per
    `multipartcopychunksize` (S3 refuses one CopyObject above 5 GiB)."""
    driver = S3Driver(s3_settings(s3_bucket, multipartcopythresholdsize=CHUNK,
                                  multipartcopychunksize=CHUNK))
    data = pattern(2 * CHUNK + 99, seed=4)
    await driver.put_content("/up/data", data)
    await driver.move("/up/data", "/blobs/ab/data")
    assert await driver.get_content("/blobs/ab/data") == data
    assert await driver.stat("/up/data") is None
    client = botocore_client(s3_bucket.service)
    head = client.head_object(Bucket=s3_bucket.bucket, Key=f"{s3_bucket.prefix}blobs/ab/data")
    assert head["ETag"].strip('"').endswith("-3")  # made of three parts
    await driver.close()


async def test_batches_beyond_one_request(driver: S3Driver, s3_bucket: S3Bucket) -> None:
    """Listings and DeleteObjects take 1,000 keys a request: more spans several."""
    count = 1010
    client = botocore_client(s3_bucket.service)
    for n in range(count):  # arranged directly: quicker than through the driver
        client.put_object(Bucket=s3_bucket.bucket, Key=f"{s3_bucket.prefix}many/f{n:04}",
                          Body=b"x")
    client.put_object(Bucket=s3_bucket.bucket, Key=f"{s3_bucket.prefix}kept", Body=b"k")
    assert len(await driver.list("/many")) == count
    infos = await driver.stat_many([f"/many/f{n:04}" for n in range(count)])
    assert all(info is not None and info.size == 1 for info in infos)
    await driver.delete_many(["/many"])
    assert keys(s3_bucket) == ["kept"]
    with pytest.raises(PathNotFound):
        await driver.list("/many")


def test_parts_reach_s3s_largest_object_in_10000() -> None:
    """Parts keep `chunksize` for the first thousand, then double every thousand (up to
    S3's largest part), so a 5 GiB layer fits with 5 MiB parts and 10,000 parts hold
    S3's largest object (5 TiB) even from the smallest part size."""
    assert parts_end(1000, MIN_PART) == 1000 * MIN_PART
    assert part_size(1001, MIN_PART) == 2 * MIN_PART
    assert parts_end(1001, MIN_PART) == 1000 * MIN_PART + 2 * MIN_PART
    assert parts_end(MAX_PARTS, MIN_PART) >= 4 * 1024 ** 4
    assert max(part_size(number, 10 * MIN_PART) for number in range(1, MAX_PARTS + 1)) \
        == MAX_PART
    five_gib = 5 * 1024 ** 3
    assert next(n for n in range(1, MAX_PARTS + 1) if parts_end(n, MIN_PART) >= five_gib) \
        < 1100


async def test_commit_after_a_completion_whose_tail_was_left(driver: S3Driver,
                                                            s3_bucket: S3Bucket) -> None:
    """A commit that completed the upload but died before removing the pending tail is
    finished by the next commit."""
    path = "/_uploads/c/data"
    data = pattern(CHUNK + 99, seed=4)
    writer = await driver.writer(path)
    await writer.write(data)
    await writer.close()
    assert await driver.stat(path) is None  # nothing at the key before the commit
    client = botocore_client(s3_bucket.service)
    pending_key = driver.key(path) + "~pending"
    head = client.head_object(Bucket=s3_bucket.bucket, Key=pending_key)
    tail = client.get_object(Bucket=s3_bucket.bucket, Key=pending_key)["Body"].read()
    writer = await driver.writer(path)
    await writer.commit()
    # The tail back, as if the commit had died right after completing.
    client.put_object(Bucket=s3_bucket.bucket, Key=pending_key, Body=tail,
                      Metadata=head["Metadata"])
    again = await driver.writer(path)
    assert again.size == len(data)
    await again.commit()
    assert await driver.get_content(path) == data
    info = await driver.stat_writer(path)
    assert info is not None and info.size == len(data)
    assert keys(s3_bucket) == [driver.key(path)[len(s3_bucket.prefix):]]
