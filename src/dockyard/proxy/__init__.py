"""Pull-through cache: repositories whose content comes from an upstream registry and is
kept in the local store as it is pulled."""
