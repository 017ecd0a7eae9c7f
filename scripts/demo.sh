#!/usr/bin/env bash
# Show the sriov plugin at work on a simulated SR-IOV NIC, from a bare Debian 12 machine.
#
# Usage: scripts/demo.sh          (as root)
# Environment:
#   DEMO_PF      simulated PF name (default simpf0); its VFs are named <pf>v<N>, so it has
#                at most 13 characters
#   DEMO_DIR     directory of the simulated sysfs and the plugin state (default /var/lib/sriov-demo)
#   DEMO_PLUGIN  plugin name (default sriov:latest)
#   DOCKER_HOST  the Docker Engine to use, as for the docker CLI
#
# Steps: install what is missing (scripts/install-deps.sh), start dockerd if no engine
# answers, remove a previous demo (scripts/demo-clean.sh), build and create the plugin,
# import a static-busybox image, create a simulated PF with 4 VFs, point the plugin at
# it and enable it, create networks red (VLAN 100) and blue (VLAN 200), run two
# containers on red and one on blue, show what each got, then check that red reaches
# red and blue does not reach red. Prints PASS/FAIL per check; exits 1 if any failed.
set -Eeuo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

pf=${DEMO_PF:-simpf0}
dir=${DEMO_DIR:-/var/lib/sriov-demo}
plugin=${DEMO_PLUGIN:-sriov:latest}
export DEMO_PF=$pf DEMO_DIR=$dir DEMO_PLUGIN=$plugin # for demo-clean.sh
image=sriov-test-busybox:latest
label=sriov-demo
vfs=4
# The simulated PF and its VFs start at jumbo MTU; each network sets its own, which the
# plugin applies to the VF (Docker does not), so both MTUs show the plugin at work.
pf_mtu=9000
red_mtu=9000
blue_mtu=1500
# An address of red's subnet that no container holds (the IPAM hands out from the bottom).
red_spare=10.100.0.250

started=$SECONDS
current_step=
failures=0

step() {
    current_step=$*
    printf '\n==> %s\n' "$*"
}

# The VF netdevs <pf>v<N> must be valid interface names (at most 15 bytes); check before
# anything is built rather than fail when the simulated NIC is made.
check_pf_name() {
    local max=$((15 - 1 - ${#vfs}))
    if ! [[ $pf =~ ^[A-Za-z0-9_.-]+$ ]] || [ "${#pf}" -gt "$max" ]; then
        echo "demo.sh: DEMO_PF '$pf' is not a usable PF name: use 1-$max letters, digits, '_', '.' or '-'" \
            "(its VFs are named ${pf}v0..${pf}v$((vfs - 1)), at most 15 characters)" >&2
        exit 2
    fi
}

report_failed_step() {
    echo >&2
    echo "demo.sh: failed during: $current_step" >&2
    echo "what the demo made so far stays for inspection; $(demo_overrides)scripts/demo-clean.sh removes it" >&2
}

python() {
    "$repo/.venv/bin/python" "$@"
}

sim() {
    python -m plugin sim "$@" --sysfs "$dir/sys"
}

# check DESCRIPTION COMMAND...: run COMMAND quietly and print PASS or FAIL.
check() {
    local description=$1
    shift
    if "$@" >/dev/null 2>&1; then
        echo "PASS  $description"
    else
        echo "FAIL  $description"
        failures=$((failures + 1))
    fi
}

fails() {
    ! "$@"
}

configure_plugin() {
    rm -rf "$dir/state"
    mkdir -p "$dir/state"
    docker plugin set "$plugin" sysfs.source="$dir/sys" state.source="$dir/state" SRIOV_NIC=sim
    docker plugin enable "$plugin" >/dev/null
    echo "plugin $plugin: sysfs.source=$dir/sys state.source=$dir/state SRIOV_NIC=sim, enabled"
}

# make_network NAME VLAN SUBNET [OPTION...]
make_network() {
    local name=$1 vlan=$2 subnet=$3
    shift 3
    docker network create -d "$plugin" --ipam-driver "$plugin" --label "$label" \
        -o pf_iface="$pf" -o vlanid="$vlan" "$@" --subnet "$subnet" "$name" >/dev/null
    echo "network $name: VLAN $vlan, subnet $subnet${*:+, $*}"
}

# run_container NAME NETWORK [DOCKER RUN OPTION...]
run_container() {
    local name=$1 network=$2
    shift 2
    docker run -d --name "$name" --label "$label" --net "$network" "$@" "$image" \
        sleep 86400 >/dev/null
    echo "container $name on $network"
}

container_ip() {
    docker inspect -f "{{(index .NetworkSettings.Networks \"$2\").IPAddress}}" "$1"
}

container_mac() {
    docker exec "$1" cat /sys/class/net/eth0/address
}

container_mtu() {
    docker exec "$1" cat /sys/class/net/eth0/mtu
}

# The "VF N ... netdev NAME ..." line of `sim show` whose recorded admin MAC is MAC.
vf_line_with_mac() {
    sim show | grep -F " mac $1 " || true
}

# field NAME LINE: the word after NAME in LINE.
field() {
    awk -v key="$1" '{ for (i = 1; i < NF; i++) if ($i == key) { print $(i + 1); exit } }' <<<"$2"
}

show_container() {
    local name=$1 mac line
    mac=$(container_mac "$name")
    line=$(vf_line_with_mac "$mac")
    printf '%-16s eth0 %-15s mac %s mtu %-5s VF %s (vlan %s)\n' "$name" \
        "$(docker exec "$name" ip -o -4 addr show dev eth0 | awk '{ print $4 }')" \
        "$mac" "$(container_mtu "$name")" \
        "$(field netdev "$line")" "$(field vlan "$line")"
}

# has_vf_on_vlan CONTAINER VLAN: the container's eth0 is a VF of the PF, set to VLAN.
has_vf_on_vlan() {
    local line
    line=$(vf_line_with_mac "$(container_mac "$1")")
    [[ $(field netdev "$line") == "${pf}v"* ]] && [ "$(field vlan "$line")" = "$2" ]
}

pings() {
    docker exec "$1" ping -c 3 -W 2 "$2"
}

# The DEMO_* settings that differ from the defaults, as a prefix for the clean-up command.
demo_overrides() {
    local overrides=()
    [ "$pf" = simpf0 ] || overrides+=("DEMO_PF=$pf")
    [ "$dir" = /var/lib/sriov-demo ] || overrides+=("DEMO_DIR=$dir")
    [ "$plugin" = sriov:latest ] || overrides+=("DEMO_PLUGIN=$plugin")
    [ "${#overrides[@]}" -eq 0 ] || echo "${overrides[*]} "
}

print_summary() {
    local clean
    clean="$(demo_overrides)scripts/demo-clean.sh"
    cat <<EOF

==> What the demo did
- Docker Engine: $(docker version -f '{{.Server.Version}}' 2>/dev/null) at ${DOCKER_HOST:-unix:///var/run/docker.sock}
- plugin $plugin built from this tree, using the simulated NIC (SRIOV_NIC=sim)
- simulated PF $pf (MTU $pf_mtu) with $vfs VFs: sysfs tree in $dir/sys, VFs are veths ${pf}v0..${pf}v$((vfs - 1)),
  one Linux bridge per VLAN as the NIC's switch; plugin state in $dir/state
- networks red (VLAN 100, 10.100.0.0/24, MTU $red_mtu) and blue (VLAN 200, 10.200.0.0/24, MTU $blue_mtu)
- containers sriov-demo-red1, sriov-demo-red2 (red) and sriov-demo-blue1 (blue), image $image

Try:  docker exec sriov-demo-red1 ip addr show eth0
      cd $repo && .venv/bin/python -m plugin sim show --sysfs $dir/sys

Clean up:  $clean         removes the containers, networks and simulated NIC
           $clean --all   also removes the plugin $plugin, the image and $dir
(the Docker Engine keeps running)
EOF
}

if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh: must run as root (it installs packages, starts dockerd, creates interfaces)" >&2
    exit 1
fi
check_pf_name
trap report_failed_step ERR

step "Installing what is missing (scripts/install-deps.sh)"
scripts/install-deps.sh
echo "dependencies in place"

step "Docker Engine (scripts/start-dockerd.sh)"
scripts/start-dockerd.sh

step "Removing a previous demo (scripts/demo-clean.sh)"
scripts/demo-clean.sh

step "Building the plugin $plugin (scripts/build-plugin.sh)"
scripts/build-plugin.sh "$plugin"

step "Test image (scripts/make-test-image.sh)"
scripts/make-test-image.sh "$image"

step "Simulated SR-IOV NIC: PF $pf with $vfs VFs under $dir/sys"
mkdir -p "$dir/sys"
sim create --pf "$pf" --vfs "$vfs" --mtu "$pf_mtu"

step "Pointing the plugin at the simulated NIC"
configure_plugin

step "Networks"
make_network red 100 10.100.0.0/24 -o mtu="$red_mtu"
make_network blue 200 10.200.0.0/24 -o mtu="$blue_mtu"

step "Containers"
run_container sriov-demo-red1 red
run_container sriov-demo-red2 red
# NET_ADMIN lets the isolation check below give blue an address in red's subnet.
run_container sriov-demo-blue1 blue --cap-add NET_ADMIN

step "What each container got"
for container in sriov-demo-red1 sriov-demo-red2 sriov-demo-blue1; do
    show_container "$container"
done
echo
echo "The simulated NIC (a VF whose netdev is 'absent' has been moved into a container):"
sim show

trap - ERR
step "Checks"
red1_ip=$(container_ip sriov-demo-red1 red)
red2_ip=$(container_ip sriov-demo-red2 red)
check "sriov-demo-red1 has a VF of $pf on VLAN 100" has_vf_on_vlan sriov-demo-red1 100
check "sriov-demo-red2 has a VF of $pf on VLAN 100" has_vf_on_vlan sriov-demo-red2 100
check "sriov-demo-blue1 has a VF of $pf on VLAN 200" has_vf_on_vlan sriov-demo-blue1 200
check "sriov-demo-red1 eth0 has red's MTU $red_mtu" test "$(container_mtu sriov-demo-red1)" = "$red_mtu"
check "sriov-demo-blue1 eth0 has blue's MTU $blue_mtu (its VF started at $pf_mtu)" \
    test "$(container_mtu sriov-demo-blue1)" = "$blue_mtu"
check "sriov-demo-red1 pings sriov-demo-red2 ($red2_ip)" pings sriov-demo-red1 "$red2_ip"
check "sriov-demo-red2 pings sriov-demo-red1 ($red1_ip)" pings sriov-demo-red2 "$red1_ip"
# With an address in red's subnet, only the VLAN keeps blue from reaching red on the link.
check "sriov-demo-blue1 takes $red_spare/24 as a second address" \
    docker exec sriov-demo-blue1 ip addr add "$red_spare/24" dev eth0
check "sriov-demo-blue1, given $red_spare/24 too, cannot reach sriov-demo-red1 ($red1_ip)" \
    fails pings sriov-demo-blue1 "$red1_ip"

print_summary
echo
if [ "$failures" -ne 0 ]; then
    echo "demo.sh: $failures check(s) FAILED ($((SECONDS - started))s)"
    exit 1
fi
echo "demo.sh: all checks passed ($((SECONDS - started))s)"
