#!/usr/bin/env bash
# Build the plugin under a registry name and push it there.
#
# Usage: scripts/push-plugin.sh REMOTE_NAME      e.g. registry.example.com:5000/sriov:1.0
#
# Docker has no `plugin tag`: a plugin is pushed under the name it was created with, so
# this builds it as REMOTE_NAME (scripts/build-plugin.sh, reusing cached layers) and runs
# `docker plugin push`. Log in first (`docker login`) if the registry needs it; Docker
# talks plain HTTP only to registries on 127.0.0.0/8 or listed as insecure-registries.
# Users then install it with:
#   docker plugin install --alias sriov:latest --grant-all-permissions REMOTE_NAME
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 REMOTE_NAME   (e.g. 127.0.0.1:5000/sriov:latest)" >&2
    exit 2
fi
remote=$1
repo=$(cd "$(dirname "$0")/.." && pwd)

"$repo/scripts/build-plugin.sh" "$remote"
docker plugin push "$remote"
echo "pushed $remote"
