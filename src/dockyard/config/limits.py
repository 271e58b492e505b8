"""Limits shared by the domain and the config; light enough for every CLI command to import."""

# The largest manifest accepted unless configured otherwise: 4 MiB, as distribution.
DEFAULT_MAX_MANIFEST_SIZE = 4 * 1024 * 1024
