"""Configuration: distribution's config.yml, REGISTRY_* environment overrides, and defaults."""

from dockyard.config.loader import ConfigError, default_config, load_config
from dockyard.config.model import Config, DatabaseConfig, DatabasePool

__all__ = ["Config", "ConfigError", "DatabaseConfig", "DatabasePool", "default_config",
           "load_config"]
