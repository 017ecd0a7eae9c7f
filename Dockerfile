# Root filesystem of the sriov managed plugin (see scripts/build-plugin.sh).
#
# The runtime dependencies are installed on the host into build/plugin-deps
# (pip --target), so this build needs no network: dockerd here runs without NAT.
# BASE is any image with python3 3.11 on PATH: the official slim image, or the
# debootstrap equivalent made by scripts/make-base-image.sh.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

COPY build/plugin-deps/ /opt/sriov/
COPY plugin/ /opt/sriov/plugin/

# Byte-compile so the plugin answers Docker's first call well within its start deadline,
# and fail the build now if the package or a dependency cannot be imported.
RUN python3 -m compileall -q /opt/sriov/plugin \
    && cd /opt/sriov && python3 -c "import falcon, jsonschema, pyroute2, waitress, plugin" \
    && mkdir -p /run/docker/plugins /host/docker-plugins /host/sys

WORKDIR /opt/sriov
ENV PYTHONPATH=/opt/sriov
CMD ["python3", "-m", "plugin", "serve"]
