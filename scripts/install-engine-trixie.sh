#!/usr/bin/env bash
# Unpack Debian 13 (trixie)'s Docker Engine 26.1 beside the system's: kept for the commands
# and notes that name it; scripts/install-engine.sh does the work for every suite.
exec bash "$(dirname "$0")/install-engine.sh" trixie
