"""S3 storage: distribution's object layout in an S3 bucket (see `driver`)."""

from dockyard.storage.s3.driver import S3Driver
from dockyard.storage.s3.settings import MAX_PART, MAX_PARTS, MIN_PART, S3Settings
from dockyard.storage.s3.writer import S3Writer, part_size, parts_end

__all__ = ["MAX_PART", "MAX_PARTS", "MIN_PART", "S3Driver", "S3Settings", "S3Writer",
           "part_size", "parts_end"]
