"""The sweep: deleting unreferenced blobs a batch at a time, each batch inside one write
transaction on the index, so a manifest push either sees the blob gone or has marked it."""

from __future__ import annotations

from dockyard.index.base import Index
from dockyard.registry import layout
from dockyard.registry.gc_model import GCReport
from dockyard.registry.reference import Digest
from dockyard.storage import FileInfo, StorageDriver


async def sweep_blobs(driver: StorageDriver, index: Index, batch: list[Digest],
                      listed: dict[Digest, FileInfo | None], cutoff: float, dry_run: bool,
                      report: GCReport, settle_candidates: bool = False) -> list[str]:
    """Delete those of `batch` that nothing is or needs, in one write transaction; the
    layer links deleted with them. With `settle_candidates` (the index's garbage
    candidates), those found in use or missing from the store stop being candidates."""
    # Sizes and dates first (from the listing, else asked), outside the transaction: an
    # upload of one of these digests records it (as fresh) in the index, which is read
    # again below, inside.
    unknown = [digest for digest in batch if listed.get(digest) is None]
    asked = dict(zip(unknown, await driver.stat_many(
        [layout.blob_data(digest) for digest in unknown]), strict=True))
    infos = [listed.get(digest) or asked.get(digest) for digest in batch]
    texts = [str(digest) for digest in batch]
    async with index.writing() as db:
        referenced = await db.referenced_among(texts)
        recorded = await db.blobs_created(texts)
        doomed: list[Digest] = []
        settled: list[str] = []
        for digest, text, info in zip(batch, texts, infos, strict=True):
            if text in referenced:
                report.blobs_kept += 1
                settled.append(text)
                continue
            if settle_candidates and info is None:
                # Not in the store (deleted before, by hand or by a full pass); an upload
                # of it since the look above would be recorded.
                if text not in recorded:
                    settled.append(text)
                continue
            size, created = recorded.get(text, (None, None))
            if created is None and info is not None:
                created = info.modified
            if created is not None and created > cutoff:
                report.blobs_kept_fresh += 1
                continue
            doomed.append(digest)
            report.blobs_deleted.append(text)
            report.bytes_freed += info.size if info is not None else (size or 0)
        if settle_candidates and not dry_run:
            await db.forget_candidates(settled)
        if dry_run or not doomed:
            return []
        gone = [str(digest) for digest in doomed]
        # Links first: a crash part-way leaves links to a blob that still exists.
        links = [layout.layer_link(repository, Digest.parse(text))
                 for repository, text in await db.links_among(gone)]
        if any(info is not None for info in listed.values()):
            # The blob tree was listed (object storage): its keys are known, so they are
            # deleted as they are, with no listing of each blob's and link's directory.
            # (A link's directory holds the link alone; pushes take this transaction.)
            await driver.delete_files(links)
            await driver.delete_files([layout.blob_data(digest) for digest in doomed
                                       if listed.get(digest) is not None])
            await driver.delete_many([layout.blob_dir(digest) for digest in doomed
                                      if listed.get(digest) is None])
        else:
            await driver.delete_lone_files(links)
            await driver.delete_lone_files([layout.blob_data(digest) for digest in doomed])
        await db.forget_blobs(gone)
    return links
