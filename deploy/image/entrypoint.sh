#!/bin/sh
# The image's entry point, taking the same arguments as registry:2's: a config file means
# `registry serve FILE`; distribution's verbs run `registry VERB ...`; anything else (sh,
# say) runs as given.
set -e
# As PID 1 this shell gets only the signals it handles: without this, a `docker stop` before
# the exec below would be lost.
trap 'exit 143' TERM

case "$1" in
    *.yaml|*.yml) set -- registry serve "$@" ;;
    serve|garbage-collect|gc|index|fsck|health|passwd|-v|--version|-h|--help)
        set -- registry "$@" ;;
esac

# A new bind mount is an empty directory owned by root: give it to the service user, so the
# registry need not run as root. A store with data in it keeps its owner, and dockyard runs
# as that owner (DOCKYARD_BECOME_STORE_OWNER): root for a store registry:2 wrote.
store="${REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY:-/var/lib/registry}"
if [ "$(id -u)" = 0 ] && [ -d "$store" ] && [ "$(stat -c %u "$store")" = 0 ] \
        && [ -z "$(ls -A "$store")" ]; then
    chown dockyard:dockyard "$store"
fi

# exec drops the trap, and dockyard handles SIGTERM only once Python has started and imports
# it (tens of ms). Started with SIGTERM blocked (GNU env 8.31+), it loses none meanwhile: a
# blocked signal waits, even for PID 1, and dockyard unblocks it with its handler in place.
if [ "$$" = 1 ] && { [ "$1" = registry ] || [ "$1" = dockyard ]; } \
        && env --block-signal=TERM true 2>/dev/null; then
    set -- env --block-signal=TERM "$@"
fi
exec "$@"
