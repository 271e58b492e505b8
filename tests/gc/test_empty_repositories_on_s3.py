"""On object storage the collector decides which repositories are empty from the listing of
the whole repositories tree it made at its start, not from a listing per repository. A push
that links a layer after that listing (a new link, or one written again) must keep its
repository: the index, which every link is recorded in, says so."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from dockyard.config.loader import load_config
from dockyard.registry import layout
from dockyard.registry.gc_repositories import StoreListing, remove_empty_repositories
from dockyard.stores import make_driver, make_index
from tests.storage.test_s3_commands import bucket_keys, s3_registry
from tests.support.oci import digest_of, make_image, push_blob, push_image
from tests.support.s3 import S3Bucket


def test_a_repository_linked_after_the_listing_is_kept(s3_bucket: S3Bucket, tmp_path: Path
                                                       ) -> None:
    quiet, mounting, relinking, source = (make_image() for _ in range(4))
    with s3_registry(s3_bucket, tmp_path) as running, \
            running.client(follow_redirects=True) as client:
        for name, image in (("quiet/app", quiet), ("busy/mounting", mounting),
                            ("busy/relinking", relinking), ("source/app", source)):
            push_image(client, name, "v1", image)
        for name, image in (("quiet/app", quiet), ("busy/mounting", mounting),
                            ("busy/relinking", relinking)):
            assert client.delete(f"/v2/{name}/manifests/{image.digest}").status_code == 202
        config = load_config(running.config_path)
        driver = make_driver(config)
        index = make_index(config)

        async def collect_after_pushes() -> list[str]:
            made_at = time.time()
            files = await driver.files_below(layout.REPOSITORIES)
            assert files is not None  # object storage lists a whole tree at once
            # Pushes between the collector's listing and its look at the repositories: a
            # layer mounted from another repository (a new link), and a layer uploaded
            # again (its link written over the one the listing saw).
            mounted = client.post("/v2/busy/mounting/blobs/uploads/", params={
                "mount": digest_of(source.layers[0]), "from": "source/app"})
            assert mounted.status_code == 201, mounted.text
            push_blob(client, "busy/relinking", relinking.layers[0])
            try:
                return await remove_empty_repositories(
                    driver, index, ["busy/mounting", "busy/relinking", "quiet/app"],
                    cutoff=time.time(), dry_run=False,
                    listing=StoreListing(files, made_at))
            finally:
                await driver.close()

        try:
            removed = asyncio.run(collect_after_pushes())
        finally:
            index.close()
        assert removed == ["quiet/app"]
        keys = bucket_keys(s3_bucket)
        assert not [key for key in keys if key.startswith("repositories/quiet/app/")]
        for name, image in (("busy/mounting", mounting), ("busy/relinking", relinking)):
            for blob in (image.config, *image.layers):
                assert client.head(f"/v2/{name}/blobs/{digest_of(blob)}").status_code == 200
        mounted_layer = f"/v2/busy/mounting/blobs/{digest_of(source.layers[0])}"
        assert client.get(mounted_layer).content == source.layers[0]
        catalog = client.get("/v2/_catalog").json()["repositories"]
        assert "quiet/app" not in catalog and "busy/mounting" in catalog
