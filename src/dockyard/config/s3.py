"""`storage.s3`: distribution's s3-aws parameters, checked as distribution checks them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dockyard.storage.s3 import MAX_PART, MIN_PART, S3Settings

WHERE = "storage.s3."
# Instant-retrieval classes, as distribution allows; NONE leaves it to the bucket.
STORAGE_CLASSES = ("NONE", "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
                   "INTELLIGENT_TIERING", "OUTPOSTS", "GLACIER_IR", "EXPRESS_ONEZONE")
OBJECT_ACLS = ("private", "public-read", "public-read-write", "authenticated-read",
               "aws-exec-read", "bucket-owner-read", "bucket-owner-full-control")
LOG_LEVELS = ("off", "debug", "debugwithsigning", "debugwithhttpbody",
              "debugwithrequestretries", "debugwithrequesterrors",
              "debugwitheventstreambody")


class S3ConfigError(ValueError):
    pass


def s3_settings(params: Mapping[str, Any],
                as_bool: Callable[[Mapping[str, Any], str, str, bool], bool],
                as_int: Callable[[Mapping[str, Any], str, str, int], int],
                as_str: Callable[[Mapping[str, Any], str, str, str], str]) -> S3Settings:
    """The driver's settings from `storage.s3` (the loader's readers convert each value)."""
    def text(key: str) -> str:
        return as_str(params, key, WHERE, "").strip()

    def size(key: str, default: int, low: int, high: int) -> int:
        value = as_int(params, key, WHERE, default)
        if not low <= value <= high:
            raise S3ConfigError(f"{WHERE}{key}: must be between {low} and {high}, "
                                f"got {value}")
        return value

    bucket = text("bucket")
    if not bucket:
        raise S3ConfigError(f"{WHERE}bucket: required")
    endpoint = text("regionendpoint")
    region = text("region")
    if not region and not endpoint:
        raise S3ConfigError(f"{WHERE}region: required unless regionendpoint is set")
    access_key, secret_key = text("accesskey"), text("secretkey")
    session_token = text("sessiontoken")
    if session_token and not access_key:
        raise S3ConfigError(f"{WHERE}sessiontoken: needs {WHERE}accesskey and "
                            f"{WHERE}secretkey (it belongs to those temporary credentials)")
    if bool(access_key) != bool(secret_key):
        raise S3ConfigError(f"{WHERE}accesskey and {WHERE}secretkey: set both, or neither "
                            "(then the AWS SDK's usual sources: environment, profile, "
                            "instance role)")
    storage_class = (text("storageclass") or "STANDARD").upper()
    if storage_class not in STORAGE_CLASSES:
        raise S3ConfigError(f"{WHERE}storageclass: must be one of {', '.join(STORAGE_CLASSES)}"
                            f", got {storage_class!r}")
    acl = text("objectacl") or "private"
    if acl not in OBJECT_ACLS:
        raise S3ConfigError(f"{WHERE}objectacl: must be one of {', '.join(OBJECT_ACLS)}, "
                            f"got {acl!r}")
    raw_level = params.get("loglevel")
    level = "off" if raw_level in (None, False) else text("loglevel").lower()
    if level not in LOG_LEVELS:
        raise S3ConfigError(f"{WHERE}loglevel: must be one of {', '.join(LOG_LEVELS)}, "
                            f"got {raw_level!r}")
    return S3Settings(
        bucket=bucket,
        region=region or "us-east-1",
        regionendpoint=endpoint or None,
        accesskey=access_key or None,
        secretkey=secret_key or None,
        sessiontoken=session_token or None,
        redirectendpoint=text("redirectendpoint") or None,
        forcepathstyle=as_bool(params, "forcepathstyle", WHERE, False),
        rootdirectory=text("rootdirectory"),
        secure=as_bool(params, "secure", WHERE, True),
        skipverify=as_bool(params, "skipverify", WHERE, False),
        v4auth=as_bool(params, "v4auth", WHERE, True),
        chunksize=size("chunksize", 10 * 1024 * 1024, MIN_PART, MAX_PART),
        multipartcopychunksize=size("multipartcopychunksize", 32 * 1024 * 1024, MIN_PART,
                                    MAX_PART),
        multipartcopymaxconcurrency=size("multipartcopymaxconcurrency", 100, 1, 10_000),
        multipartcopythresholdsize=size("multipartcopythresholdsize", 32 * 1024 * 1024, 0,
                                        MAX_PART),
        storageclass=None if storage_class == "NONE" else storage_class,
        encrypt=as_bool(params, "encrypt", WHERE, False),
        keyid=text("keyid") or None,
        objectacl=acl,
        useragent=text("useragent") or None,
        loglevel=level,
        usedualstack=as_bool(params, "usedualstack", WHERE, False),
        accelerate=as_bool(params, "accelerate", WHERE, False),
        usefipsendpoint=as_bool(params, "usefipsendpoint", WHERE, False),
    )
