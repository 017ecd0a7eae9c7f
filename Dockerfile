# Root filesystem of the sriov managed plugin (see scripts/build-plugin.sh).
#
# The runtime dependencies are installed on the host into build/plugin-deps
# (pip --target), so this build needs no network: dockerd here runs without NAT.
# BASE is any image with python3 3.11 on PATH: the official slim image, or the
# debootstrap equivalent made by scripts/make-base-image.sh. The build stage
# byte-compiles the plugin and its dependencies and lays out, with
# scripts/slim-rootfs.py, only what the plugin runs on: the interpreter, the
# standard library a server imports, the shared libraries they load, and
# /opt/sriov. The plugin's image is that tree and nothing else.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE} AS build

COPY build/plugin-deps/ /opt/sriov/
COPY plugin/ /opt/sriov/plugin/
COPY scripts/slim-rootfs.py /tmp/slim-rootfs.py

# Byte-compile so the plugin answers Docker's first call well within its start deadline,
# then check, inside the slim tree itself, that every module of the package and of its
# dependencies it loads imports, and that the request schemas load.
RUN python3 -m compileall -q -j 0 /opt/sriov \
    && python3 /tmp/slim-rootfs.py /rootfs \
    && chroot /rootfs python3 -c "import importlib, os, pkgutil, sys; os.chdir('/opt/sriov'); \
sys.path.insert(0, '/opt/sriov'); import plugin; \
[importlib.import_module(m.name) for m in pkgutil.walk_packages(plugin.__path__, 'plugin.')]; \
import falcon, jsonschema, prometheus_client, pyroute2, waitress, sqlite3, hashlib; \
plugin.protocol.schema.RequestValidator()"

FROM scratch
COPY --from=build /rootfs/ /
WORKDIR /opt/sriov
ENV PYTHONPATH=/opt/sriov
CMD ["python3", "-m", "plugin", "serve"]
