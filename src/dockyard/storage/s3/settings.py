"""`storage.s3`'s settings, and the limits of S3 the driver works within."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024
# S3's smallest part (all but the last) and largest part or single copy.
MIN_PART = 5 * MIB
MAX_PART = 5 * 1024 * MIB
MAX_PARTS = 10_000
# Keys a listing or a DeleteObjects request handles at most.
LIST_MAX = 1000
DELETE_BATCH = 1000
# ...but a few keys are spread over several requests, down to this many keys each: an S3
# server deletes the keys of one request one after another, and those of several at once.
DELETE_SPREAD_MIN = 32
# Requests a batch operation (stat_many, delete_many) keeps in flight.
BATCH_CONCURRENCY = 16
# Levels below a tree's top `files_below` looks down for directories to list side by side.
SPLIT_DEPTH = 3
# Paths a `delete_many` has at least before one listing of their shared directory may
# stand for a listing per path.
BULK_DELETE_MIN = 64
# ...and keys per path their shared directory may hold at most for that (beyond, reading
# them all costs more than a small listing per path).
BULK_KEYS_PER_PATH = 16
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
NAME_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


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

