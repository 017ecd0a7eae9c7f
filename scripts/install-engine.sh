#!/usr/bin/env bash
# Unpack a newer Debian suite's Docker Engine next to the system's, for the engine suite.
#
# Usage: scripts/install-engine.sh SUITE     (as root the first time)
#   SUITE  trixie: Debian 13's docker.io 26.1 with its containerd 1.7
#          sid:    Debian unstable's docker.io 28.5 with its containerd 2.1, and its
#                  Docker Compose 2.40 (docker-compose: a CLI plugin that also runs
#                  standalone, usr/libexec/docker/cli-plugins/docker-compose)
# Environment:
#   SRIOV_ENGINE_CACHE  where the engines are unpacked (default /var/cache/sriov-engines)
#
# Downloads the suite's docker.io (dockerd), docker-cli (its client) and containerd .deb
# files (and the others listed below) from the machine's own Debian mirror with a private
# apt configuration (the host's sources, lists and package state are not touched) and
# unpacks them with dpkg-deb -x into $SRIOV_ENGINE_CACHE/SUITE. Nothing is installed into
# the system. Newer suites' runc needs a newer glibc, so the engines use Debian 12's runc
# from PATH. Idempotent: once unpacked, it only checks the binaries and prints nothing.
set -euo pipefail

suite=${1:-}
binaries=(usr/sbin/dockerd usr/bin/docker usr/bin/containerd usr/bin/containerd-shim-runc-v2)
case $suite in
trixie)
    packages=(docker.io docker-cli containerd)
    keyring=/usr/share/keyrings/debian-archive-trixie-stable.gpg
    ;;
sid)
    packages=(docker.io docker-cli containerd docker-compose)
    binaries+=(usr/libexec/docker/cli-plugins/docker-compose)
    # Unstable is signed with the archive's current keys, not a release key of its own.
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    ;;
*)
    echo "install-engine.sh: unknown suite '$suite' (known: trixie, sid)" >&2
    exit 2
    ;;
esac
cache=${SRIOV_ENGINE_CACHE:-/var/cache/sriov-engines}
dest=$cache/$suite

unpacked() {
    local binary
    [ -f "$dest/.packages" ] || return 1
    for binary in "${binaries[@]}"; do
        [ -x "$dest/$binary" ] || return 1
    done
}

# The URI of the machine's Debian mirror: the one its apt sources use for the release
# it runs (deb822 .sources files, or one-line sources.list entries).
debian_mirror() {
    local codename
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    shopt -s nullglob
    local sources=(/etc/apt/sources.list.d/*.sources)
    local lists=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
    shopt -u nullglob
    {
        [ "${#sources[@]}" -eq 0 ] || awk -v want="$codename" '
            function flush() { if (uris != "" && suites ~ ("(^| )" want "( |$)")) print uris; uris = ""; suites = "" }
            /^[[:space:]]*$/ { flush(); next }
            tolower($1) == "uris:" { uris = $2 }
            tolower($1) == "suites:" { $1 = ""; suites = $0 " " }
            END { flush() }' "${sources[@]}"
        for list in "${lists[@]}"; do
            [ -f "$list" ] || continue
            sed -E 's/\[[^]]*\]//' "$list" |
                awk -v want="$codename" '$1 == "deb" && $3 == want { print $2 }'
        done
    } | head -n 1
}

if unpacked; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-engine.sh: $dest is missing and unpacking it needs root" >&2
    exit 1
fi

mirror=$(debian_mirror)
if [ -z "$mirror" ]; then
    echo "install-engine.sh: no Debian mirror found in /etc/apt/sources.list{,.d}" >&2
    exit 1
fi
[ -f "$keyring" ] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg

mkdir -p "$cache"
echo "unpacking $suite's ${packages[*]} from $mirror into $dest"
work=$(mktemp -d "$cache/unpack.XXXXXX")
trap 'rm -rf "$work"' EXIT
apt_dir=$work/apt
mkdir -p "$apt_dir/sources.list.d" "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial"
: >"$apt_dir/state/status"
echo "deb [signed-by=$keyring] $mirror $suite main" >"$apt_dir/sources.list"
apt_options=(
    -o "Dir::Etc::sourcelist=$apt_dir/sources.list"
    -o "Dir::Etc::sourceparts=$apt_dir/sources.list.d"
    -o "Dir::State=$apt_dir/state"
    -o "Dir::State::status=$apt_dir/state/status"
    -o "Dir::Cache=$apt_dir/cache"
    -o Acquire::Languages=none
    -o APT::Sandbox::User=root
    -o DPkg::Lock::Timeout=600
)
log=$work/apt.log
if ! { apt-get "${apt_options[@]}" -qq update &&
    (cd "$work" && apt-get "${apt_options[@]}" -qq download "${packages[@]}"); } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-engine.sh: apt-get could not download ${packages[*]} from $suite" >&2
    exit 1
fi
mkdir "$work/root"
for deb in "$work"/*.deb; do
    dpkg-deb -x "$deb" "$work/root"
    dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb" >>"$work/root/.packages"
done
rm -rf "$dest"
mv "$work/root" "$dest"
if ! unpacked || ! "$dest/usr/sbin/dockerd" --version; then
    echo "install-engine.sh: the unpacked engine in $dest does not run" >&2
    exit 1
fi
