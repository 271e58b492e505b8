# dockyard as a drop-in for registry:2: the same port, volume, config file and commands.
#
#   docker build -t dockyard .
#   docker run -d -p 5000:5000 --restart=always --name registry \
#       -v /data/registry:/var/lib/registry dockyard
#   docker exec registry bin/registry garbage-collect /etc/docker/registry/config.yml
#
# BASE: any Debian-like image with Python 3.11+ whose `python3 -m venv` works (Debian's own
# python3 needs python3-venv). pip's usual variables (PIP_INDEX_URL, PIP_FIND_LINKS,
# PIP_NO_INDEX, ...) may be given as build arguments to install from a private index.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
ARG PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_NO_INDEX PIP_TRUSTED_HOST
# The context is the package alone (.dockerignore): pyproject.toml, README.md, LICENSE, src/.
COPY . /src/
# The project's wheel, then dockyard from it with its dependencies, in a venv that is copied
# whole into the final image (without pip, which it does not need).
RUN python3 -m venv /opt/dockyard \
    && /opt/dockyard/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /src \
    && /opt/dockyard/bin/pip install --no-cache-dir /wheels/dockyard-*.whl \
    && /opt/dockyard/bin/pip uninstall --yes pip setuptools \
    && find /opt/dockyard -name '*.pyi' -delete

FROM ${BASE}
# Metadata first: with some storage drivers (vfs) every instruction copies the image's file
# tree, and here it is still the base's alone.
# Root commands (the entry point, `docker exec ... registry garbage-collect`) work as the
# store's owner, so nothing they write is root's in a store the service user owns.
ENV DOCKYARD_BECOME_STORE_OWNER=1 PYTHONDONTWRITEBYTECODE=1
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["dockyard", "health", "/etc/docker/registry/config.yml"]
ENTRYPOINT ["/entrypoint.sh"]
CMD ["/etc/docker/registry/config.yml"]
COPY --from=build /opt/dockyard /opt/dockyard
COPY deploy/image/ /opt/dockyard/image/
# The service user: a fresh volume is handed to it by the entry point; a store that already
# has an owner (root, for one registry:2 wrote) is served as that owner. `registry` is on
# PATH and is bin/registry from /, as in distribution's image. (One RUN: each instruction
# costs a layer.)
RUN useradd --system --uid 10001 --user-group --no-create-home \
        --home-dir /var/lib/registry --shell /usr/sbin/nologin dockyard \
    && mkdir -p /var/lib/registry /etc/docker/registry \
    && chown dockyard:dockyard /var/lib/registry \
    && install -m 0644 /opt/dockyard/image/config.yml /etc/docker/registry/config.yml \
    && install -m 0755 /opt/dockyard/image/entrypoint.sh /entrypoint.sh \
    && rm -r /opt/dockyard/image \
    && ln -s /opt/dockyard/bin/dockyard /usr/local/bin/dockyard \
    && ln -s /opt/dockyard/bin/dockyard /usr/local/bin/registry \
    && ln -s /opt/dockyard/bin/dockyard /bin/registry
# After the RUN: a build step's changes under a declared volume would be dropped.
VOLUME ["/var/lib/registry"]
