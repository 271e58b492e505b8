"""`storage.s3` takes distribution's keys, from config.yml or REGISTRY_STORAGE_S3_*, and
refuses what it cannot honour, naming the key, before anything is served."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from dockyard.config.loader import ConfigError, load_config
from dockyard.stores import make_driver
from tests.config.test_config_keys import serve
from tests.support.s3 import S3Bucket, botocore_client
from tests.support.server import free_port


def s3_config(tmp_path: Path, **s3: Any) -> dict[str, Any]:
    return {"version": 0.1,
            "storage": {"s3": {"bucket": "registry", "region": "us-east-1",
                               "indexdirectory": str(tmp_path / "index"), **s3}},
            "http": {"addr": f"127.0.0.1:{free_port()}"}}


@pytest.mark.parametrize(("s3", "message"), [
    ({"bucket": ""}, "storage.s3.bucket: required"),
    ({"region": "", "regionendpoint": ""}, "storage.s3.region: required"),
    ({"accesskey": "AKIAEXAMPLE"}, "storage.s3.secretkey"),
    ({"chunksize": 1024}, "storage.s3.chunksize: must be between 5242880"),
    ({"multipartcopythresholdsize": 6 << 30}, "storage.s3.multipartcopythresholdsize"),
    ({"storageclass": "GLACIER"}, "storage.s3.storageclass: must be one of"),
    ({"objectacl": "everyone"}, "storage.s3.objectacl: must be one of"),
    ({"encrypt": "yes please"}, "storage.s3.encrypt: expected true or false"),
    ({"loglevel": "loud"}, "storage.s3.loglevel: must be one of"),
    ({"sessiontoken": "token"}, "storage.s3.sessiontoken: needs storage.s3.accesskey"),
    # A misspelled security setting would silently store in clear: refused, not warned.
    ({"encrpyt": True}, "storage.s3.encrpyt: unknown key (did you mean storage.s3.encrypt?)"),
])
def test_what_cannot_be_honoured_is_refused(tmp_path: Path, s3: dict[str, Any],
                                            message: str) -> None:
    result = serve(tmp_path, s3_config(tmp_path, **s3))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_distributions_keys_are_read_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(s3_config(tmp_path, storageclass="reduced_redundancy",
                                             encrypt=True, keyid="alias/registry",
                                             loglevel=False, redirectendpoint="https://cdn")))
    config = load_config(path, environ={})
    settings = config.storage.s3
    assert settings is not None
    assert (settings.bucket, settings.region, settings.regionendpoint) == (
        "registry", "us-east-1", None)
    assert (settings.secure, settings.v4auth, settings.forcepathstyle) == (True, True, False)
    assert (settings.chunksize, settings.multipartcopychunksize,
            settings.multipartcopythresholdsize, settings.multipartcopymaxconcurrency) == (
        10 << 20, 32 << 20, 32 << 20, 100)
    assert (settings.storageclass, settings.encrypt, settings.keyid, settings.objectacl,
            settings.loglevel) == ("REDUCED_REDUNDANCY", True, "alias/registry", "private",
                                   "off")
    assert (settings.accesskey, settings.secretkey) == (None, None)  # the SDK's own sources
    assert config.storage.root_directory == str(tmp_path / "index")
    assert settings.redirectendpoint == "https://cdn"
    assert config.ignored_keys == ()
    none = load_config(path, environ={"REGISTRY_STORAGE_S3_STORAGECLASS": "NONE"})
    assert none.storage.s3 is not None and none.storage.s3.storageclass is None
    with pytest.raises(ConfigError, match="unsupported storage driver"):
        load_config(path, environ={"REGISTRY_STORAGE": "gcs"})


def test_environment_configures_a_working_driver(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    """REGISTRY_STORAGE=s3 and REGISTRY_STORAGE_S3_* alone, over a filesystem config, give
    a driver that writes distribution's keys into the bucket under rootdirectory."""
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({
        "version": 0.1, "storage": {"filesystem": {"rootdirectory": str(tmp_path / "fs")}}}))
    environ = {
        "REGISTRY_STORAGE": "s3",
        "REGISTRY_STORAGE_S3_BUCKET": s3_bucket.bucket,
        "REGISTRY_STORAGE_S3_REGION": s3_bucket.region,
        "REGISTRY_STORAGE_S3_REGIONENDPOINT": s3_bucket.endpoint,
        "REGISTRY_STORAGE_S3_ACCESSKEY": s3_bucket.access_key,
        "REGISTRY_STORAGE_S3_SECRETKEY": s3_bucket.secret_key,
        "REGISTRY_STORAGE_S3_FORCEPATHSTYLE": str(s3_bucket.service.path_style).lower(),
        "REGISTRY_STORAGE_S3_SECURE": "false",
        "REGISTRY_STORAGE_S3_ROOTDIRECTORY": f"/{s3_bucket.prefix}registry",
        "REGISTRY_STORAGE_S3_CHUNKSIZE": str(5 << 20),
        "REGISTRY_STORAGE_S3_INDEXDIRECTORY": str(tmp_path / "index"),
    }
    config = load_config(path, environ=environ, strict=True)
    assert config.storage.driver == "s3"
    assert config.storage.s3 is not None and config.storage.s3.chunksize == 5 << 20
    driver = make_driver(config)

    async def put_and_get() -> bytes:
        await driver.put_content("/docker/registry/v2/blobs/sha256/ab/abc/data", b"blob")
        data = await driver.get_content("/docker/registry/v2/blobs/sha256/ab/abc/data")
        await driver.close()  # type: ignore[attr-defined]
        return data

    assert asyncio.run(put_and_get()) == b"blob"
    client = botocore_client(s3_bucket.service)
    listed = client.list_objects_v2(Bucket=s3_bucket.bucket, Prefix=s3_bucket.prefix)
    assert [item["Key"] for item in listed["Contents"]] == [
        f"{s3_bucket.prefix}registry/docker/registry/v2/blobs/sha256/ab/abc/data"]


def test_redirects_are_on_unless_disabled(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(s3_config(tmp_path)))
    assert load_config(path, environ={}).storage.redirect_disabled is False
    disabled = load_config(path, environ={"REGISTRY_STORAGE_REDIRECT_DISABLE": "true"})
    assert disabled.storage.redirect_disabled is True
    written = {**s3_config(tmp_path)}
    written["storage"] = {**written["storage"], "redirect": {"disable": True}}
    path.write_text(yaml.safe_dump(written))
    assert load_config(path, environ={}).storage.redirect_disabled is True
    assert "storage.redirect.disable" not in load_config(path, environ={}).ignored_keys


def test_a_redirect_setting_that_is_not_a_boolean_is_refused(tmp_path: Path) -> None:
    config = s3_config(tmp_path)
    config["storage"]["redirect"] = {"disable": "sometimes"}
    result = serve(tmp_path, config)
    assert result.returncode == 2, result.stderr
    assert "storage.redirect.disable: expected true or false" in result.stderr
    assert "Traceback" not in result.stderr
