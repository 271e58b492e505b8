"""Configuration: distribution's config.yml, REGISTRY_* environment overrides, and defaults."""

from dockyard.config.loader import ConfigError, default_config, load_config
from dockyard.config.model import Config

__all__ = ["Config", "ConfigError", "default_config", "load_config"]
