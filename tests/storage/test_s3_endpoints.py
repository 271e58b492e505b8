"""The S3 endpoints the tests use (radosgw, moto, or an external S3) answer real S3 requests."""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.support.s3 import S3Bucket, botocore_client


def test_object_put_get_list_delete(s3_bucket: S3Bucket) -> None:
    client = botocore_client(s3_bucket.service)
    body = os.urandom(100_000)
    keys = [f"{s3_bucket.prefix}docker/registry/v2/blobs/{n}/data" for n in range(3)]
    empty = client.list_objects_v2(Bucket=s3_bucket.bucket, Prefix=s3_bucket.prefix)
    assert empty["KeyCount"] == 0
    for key in keys:
        client.put_object(Bucket=s3_bucket.bucket, Key=key, Body=body)

    fetched = client.get_object(Bucket=s3_bucket.bucket, Key=keys[1])["Body"].read()
    assert hashlib.sha256(fetched).digest() == hashlib.sha256(body).digest()
    listed = client.list_objects_v2(Bucket=s3_bucket.bucket, Prefix=s3_bucket.prefix)
    assert sorted(item["Key"] for item in listed["Contents"]) == keys
    assert all(item["Size"] == len(body) for item in listed["Contents"])

    client.delete_object(Bucket=s3_bucket.bucket, Key=keys[0])
    with pytest.raises(client.exceptions.NoSuchKey):
        client.get_object(Bucket=s3_bucket.bucket, Key=keys[0])
    listed = client.list_objects_v2(Bucket=s3_bucket.bucket, Prefix=s3_bucket.prefix)
    assert sorted(item["Key"] for item in listed["Contents"]) == keys[1:]


def test_multipart_upload_resumed_by_upload_id(s3_bucket: S3Bucket) -> None:
    """An upload begun by one client is listed and finished by another, as workers will."""
    key = f"{s3_bucket.prefix}_uploads/blob"
    part = os.urandom(5 << 20)  # S3's smallest part but the last
    first = botocore_client(s3_bucket.service)
    upload_id = first.create_multipart_upload(Bucket=s3_bucket.bucket, Key=key)["UploadId"]
    first.upload_part(
        Bucket=s3_bucket.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=part
    )

    second = botocore_client(s3_bucket.service)
    listed = second.list_parts(Bucket=s3_bucket.bucket, Key=key, UploadId=upload_id)
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [(1, len(part))]
    tail = second.upload_part(
        Bucket=s3_bucket.bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=b"end"
    )
    parts = [{"PartNumber": 1, "ETag": listed["Parts"][0]["ETag"]},
             {"PartNumber": 2, "ETag": tail["ETag"]}]
    second.complete_multipart_upload(
        Bucket=s3_bucket.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    stored = second.get_object(Bucket=s3_bucket.bucket, Key=key)["Body"].read()
    assert stored == part + b"end"

