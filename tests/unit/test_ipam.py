"""IpamService on a real SQLite store: pools, addresses, errors, idempotency, durability."""

import ipaddress
import sqlite3
from contextlib import closing

import pytest

from plugin.config import parse_default_pools
from plugin.errors import Conflict, InvalidRequest
from plugin.services.ipam import IpamService
from plugin.state.sqlite import Store

GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}
DEFAULTS = "10.9.0.0/22:24,fd00:9::/48:64"


@pytest.fixture
def ipam(store: Store) -> IpamService:
    return IpamService(store, parse_default_pools(DEFAULTS))


def pool_of(ipam: IpamService, cidr: str = "", subpool: str = "", space: str = "local") -> str:
    v6 = bool(cidr) and ipaddress.ip_network(cidr).version == 6
    return ipam.request_pool(space, cidr, subpool, None, v6).pool_id


def held_count(store: Store, pool_id: str) -> int:
    with store.transaction() as tx:
        return tx.count_addresses(pool_id, 0, (1 << 128) - 1)


def pool_count(store: Store) -> int:
    with closing(sqlite3.connect(store.path)) as conn:
        return conn.execute("SELECT COUNT(*) FROM pools").fetchone()[0]


# --- capabilities ------------------------------------------------------------


def test_without_a_cluster_store_docker_is_not_asked_for_endpoint_macs(ipam):
    assert ipam.needs_endpoint_mac is False


# --- explicit pools ----------------------------------------------------------


def test_explicit_ipv4_pool(ipam):
    reply = ipam.request_pool("local", "10.1.0.0/24", "", None, False)
    assert reply.pool == "10.1.0.0/24"
    assert ipam.request_address(reply.pool_id, "", None) == "10.1.0.1/24"


def test_explicit_ipv6_pool(ipam):
    reply = ipam.request_pool("local", "fd00:1::/64", "", None, True)
    assert reply.pool == "fd00:1::/64"
    assert ipam.request_address(reply.pool_id, "", None) == "fd00:1::1/64"


@pytest.mark.parametrize(("pool", "v6"), [("10.1.0.0/24", True), ("fd00:1::/64", False)])
def test_pool_family_must_match_v6_flag(ipam, store, pool, v6):
    with pytest.raises(InvalidRequest, match=r"pool .* is IPv\d but the request is for IPv\d"):
        ipam.request_pool("local", pool, "", None, v6)
    assert pool_count(store) == 0


def test_subpool_inside_pool_limits_dynamic_addresses(ipam):
    pool_id = pool_of(ipam, "10.1.0.0/24", "10.1.0.128/25")
    assert ipam.request_address(pool_id, "", None) == "10.1.0.128/24"
    assert ipam.request_address(pool_id, "", None) == "10.1.0.129/24"


def test_subpool_outside_pool_is_refused(ipam, store):
    with pytest.raises(InvalidRequest, match=r"SubPool 10\.2\.0\.0/25 is not inside pool 10\.1"):
        ipam.request_pool("local", "10.1.0.0/24", "10.2.0.0/25", None, False)
    assert pool_count(store) == 0


def test_subpool_of_other_family_is_refused(ipam):
    with pytest.raises(InvalidRequest, match="is not inside pool"):
        ipam.request_pool("local", "10.1.0.0/24", "fd00::/120", None, False)


def test_subpool_without_pool_is_refused(ipam, store):
    with pytest.raises(InvalidRequest, match=r"SubPool 10\.1\.0\.0/25 needs a Pool"):
        ipam.request_pool("local", "", "10.1.0.0/25", None, False)
    assert pool_count(store) == 0


@pytest.mark.parametrize("bad", ["10.1.0/24x", "300.1.0.0/24", "10.1.0.0/33", "hello"])
def test_malformed_cidr_is_refused(ipam, bad):
    with pytest.raises(InvalidRequest, match=r"pool .* is not a valid CIDR \(e\.g\."):
        ipam.request_pool("local", bad, "", None, False)


def test_pool_without_prefix_length_is_refused(ipam):
    with pytest.raises(InvalidRequest, match=r"'10\.1\.0\.0' has no prefix length"):
        ipam.request_pool("local", "10.1.0.0", "", None, False)


def test_host_bits_set_suggests_the_network(ipam, store):
    with pytest.raises(InvalidRequest, match=r"pool 10\.1\.0\.5/24 has host bits set "
                       r"\(did you mean 10\.1\.0\.0/24\?\)"):  # fmt: skip
        ipam.request_pool("local", "10.1.0.5/24", "", None, False)
    with pytest.raises(InvalidRequest, match=r"did you mean 10\.1\.0\.128/25\?"):
        ipam.request_pool("local", "10.1.0.0/24", "10.1.0.130/25", None, False)
    assert pool_count(store) == 0


def test_unknown_address_space_is_refused(ipam):
    with pytest.raises(InvalidRequest, match="unknown address space 'LocalDefault'"):
        ipam.request_pool("LocalDefault", "10.1.0.0/24", "", None, False)


def test_overlap_in_same_space_is_a_conflict(ipam):
    pool_of(ipam, "10.1.0.0/16")
    with pytest.raises(Conflict) as raised:
        ipam.request_pool("local", "10.1.0.0/24", "", None, False)
    assert raised.value.message == ("10.1.0.0/24 overlaps pool 10.1.0.0/16 in address space local")
    assert raised.value.status == 409


def test_larger_pool_over_a_held_smaller_one_is_a_conflict(ipam):
    pool_of(ipam, "10.1.5.0/24")
    with pytest.raises(Conflict, match=r"10\.0\.0\.0/8 overlaps pool 10\.1\.5\.0/24"):
        ipam.request_pool("local", "10.0.0.0/8", "", None, False)


def test_adjacent_pools_do_not_overlap(ipam):
    pool_of(ipam, "10.1.0.0/24")
    pool_of(ipam, "10.1.1.0/24")
    pool_of(ipam, "10.0.255.0/24")


def test_same_numbers_in_other_family_do_not_overlap(ipam):
    """::a01:0/112 has the same integer range as 10.1.0.0/16; family keeps them apart."""
    pool_of(ipam, "10.1.0.0/16")
    pool_of(ipam, "::a01:0/112")


def test_same_cidr_in_local_and_global_spaces(ipam):
    local = pool_of(ipam, "10.1.0.0/24", space="local")
    global_ = pool_of(ipam, "10.1.0.0/24", space="global")
    assert local != global_
    assert ipam.request_address(local, "", None) == "10.1.0.1/24"
    assert ipam.request_address(global_, "", None) == "10.1.0.1/24"


def test_same_pool_with_other_subpool_is_a_conflict(ipam):
    pool_of(ipam, "10.1.0.0/24", "10.1.0.0/25")
    with pytest.raises(Conflict, match=r"overlaps pool 10\.1\.0\.0/24"):
        ipam.request_pool("local", "10.1.0.0/24", "10.1.0.128/25", None, False)


def test_identical_request_shares_the_pool_until_every_holder_releases(ipam):
    first = pool_of(ipam, "10.1.0.0/24")
    second = pool_of(ipam, "10.1.0.0/24")
    assert first == second
    address = ipam.request_address(first, "", None)
    ipam.release_pool(first)
    with pytest.raises(Conflict, match="already in use"):
        ipam.request_address(first, address.split("/")[0], None)
    ipam.release_pool(first)
    with pytest.raises(InvalidRequest, match=r"unknown pool .* \(was it released\?\)"):
        ipam.request_address(first, "", None)
    assert pool_of(ipam, "10.1.0.0/24") != first


def test_released_pool_frees_its_addresses(ipam, store):
    pool_id = pool_of(ipam, "10.1.0.0/24")
    ipam.request_address(pool_id, "", None)
    ipam.release_pool(pool_id)
    assert held_count(store, pool_id) == 0


def test_user_options_are_refused_and_create_nothing(ipam, store):
    with pytest.raises(InvalidRequest) as raised:
        ipam.request_pool("local", "10.1.0.0/24", "", {"foo": "1", "bar": "2"}, False)
    assert raised.value.message == (
        "unknown --ipam-opt bar, foo (the sriov IPAM driver takes only cluster=true|false)"
    )
    assert pool_count(store) == 0


def test_cluster_option_needs_a_cluster_store_and_a_subnet(ipam, store):
    with pytest.raises(InvalidRequest, match="needs the plugin setting SRIOV_CLUSTER_STORE"):
        ipam.request_pool("local", "10.1.0.0/24", "", {"cluster": "true"}, False)
    with pytest.raises(InvalidRequest, match=r"cluster=maybe is not allowed: use true or false"):
        ipam.request_pool("local", "10.1.0.0/24", "", {"cluster": "maybe"}, False)
    with pytest.raises(InvalidRequest, match="is a cluster pool but the plugin has no cluster"):
        ipam.request_address("cluster:local/10.1.0.0/24#00000000", "", None)
    assert pool_count(store) == 0
    reply = ipam.request_pool("local", "10.1.0.0/24", "", {"cluster": "false"}, False)
    assert not reply.pool_id.startswith("cluster:")


def test_docker_options_are_ignored_and_do_not_split_a_shared_pool(ipam):
    plain = pool_of(ipam, "10.1.0.0/24")
    with_docker_keys = ipam.request_pool(
        "local", "10.1.0.0/24", "", {"com.docker.network.ipam.serial": "true"}, False
    )
    assert with_docker_keys.pool_id == plain


# --- default pools -----------------------------------------------------------


def test_default_pools_are_successive_and_skip_explicit_pools(ipam):
    first = ipam.request_pool("local", "", "", None, False)
    second = ipam.request_pool("local", "", "", None, False)
    pool_of(ipam, "10.9.2.0/24")
    third = ipam.request_pool("local", "", "", None, False)
    assert [first.pool, second.pool, third.pool] == ["10.9.0.0/24", "10.9.1.0/24", "10.9.3.0/24"]
    assert len({first.pool_id, second.pool_id, third.pool_id}) == 3


def test_default_pool_skips_a_larger_explicit_pool(ipam):
    pool_of(ipam, "10.9.0.0/23")
    assert ipam.request_pool("local", "", "", None, False).pool == "10.9.2.0/24"


def test_default_pool_skips_an_explicit_pool_that_contains_the_base(ipam):
    pool_of(ipam, "10.0.0.0/8")
    with pytest.raises(Conflict, match="no free IPv4 subnet"):
        ipam.request_pool("local", "", "", None, False)


def test_released_default_pool_is_reused(ipam):
    first = ipam.request_pool("local", "", "", None, False)
    ipam.request_pool("local", "", "", None, False)
    ipam.release_pool(first.pool_id)
    assert ipam.request_pool("local", "", "", None, False).pool == first.pool


def test_default_pools_per_space(ipam):
    assert ipam.request_pool("local", "", "", None, False).pool == "10.9.0.0/24"
    assert ipam.request_pool("global", "", "", None, False).pool == "10.9.0.0/24"


def test_ipv6_default_pool(ipam):
    assert ipam.request_pool("local", "", "", None, True).pool == "fd00:9::/64"
    assert ipam.request_pool("local", "", "", None, True).pool == "fd00:9:0:1::/64"
    assert ipam.request_pool("local", "", "", None, False).pool == "10.9.0.0/24"


def test_ipv6_default_subnets_at_the_bottom_of_the_space_stay_ipv6(store):
    ipam = IpamService(store, parse_default_pools("::/8:16"))
    assert ipam.request_pool("local", "", "", None, True).pool == "::/16"
    assert ipam.request_pool("local", "", "", None, True).pool == "1::/16"


def test_tiny_default_pool_is_exhausted_with_a_conflict(store):
    ipam = IpamService(store, parse_default_pools("10.9.0.0/23:24"))
    ipam.request_pool("local", "", "", None, False)
    ipam.request_pool("local", "", "", None, False)
    with pytest.raises(Conflict) as raised:
        ipam.request_pool("local", "", "", None, False)
    assert raised.value.message == (
        "no free IPv4 subnet left in the default pools (10.9.0.0/23:24) of "
        "address space local; give --subnet or extend SRIOV_DEFAULT_POOLS"
    )
    assert pool_count(store) == 2


def test_no_ipv6_default_configured(store):
    ipam = IpamService(store, parse_default_pools("10.9.0.0/23:24"))
    with pytest.raises(Conflict, match=r"no free IPv6 subnet .* \(none configured\)"):
        ipam.request_pool("local", "", "", None, True)


def test_second_default_base_is_used_when_the_first_is_full(store):
    ipam = IpamService(store, parse_default_pools("10.9.0.0/24:24,10.10.0.0/24:25"))
    pools = [ipam.request_pool("local", "", "", None, False).pool for _ in range(3)]
    assert pools == ["10.9.0.0/24", "10.10.0.0/25", "10.10.0.128/25"]


# --- gateway and specific addresses ------------------------------------------


def test_gateway_is_first_host_and_repeatable(ipam):
    pool_id = pool_of(ipam, "10.1.0.0/24")
    assert ipam.request_address(pool_id, "", GATEWAY) == "10.1.0.1/24"
    assert ipam.request_address(pool_id, "", GATEWAY) == "10.1.0.1/24"
    assert ipam.request_address(pool_id, "", None) == "10.1.0.2/24"


def test_ipv6_gateway_is_first_host(ipam):
    pool_id = pool_of(ipam, "fd00:1::/64")
    assert ipam.request_address(pool_id, "", GATEWAY) == "fd00:1::1/64"


def test_ipv6_addresses_below_2_to_the_32_stay_ipv6(ipam):
    pool_id = pool_of(ipam, "::/120")
    assert ipam.request_address(pool_id, "", GATEWAY) == "::1/120"
    assert ipam.request_address(pool_id, "", None) == "::2/120"
    with pytest.raises(Conflict, match=r"::2 in ::/120 is already in use"):
        ipam.request_address(pool_id, "::2", None)


def test_explicit_gateway_and_repeat(ipam):
    pool_id = pool_of(ipam, "10.1.0.0/24")
    assert ipam.request_address(pool_id, "10.1.0.254", GATEWAY) == "10.1.0.254/24"
    assert ipam.request_address(pool_id, "10.1.0.254", GATEWAY) == "10.1.0.254/24"
    with pytest.raises(Conflict, match=r"10\.1\.0\.254 in 10\.1\.0\.0/24 is already in use"):
        ipam.request_address(pool_id, "10.1.0.254", None)


def test_specific_address_inside_pool(ipam):
    pool_id = pool_of(ipam, "10.1.0.0/24")
    assert ipam.request_address(pool_id, "10.1.0.10", None) == "10.1.0.10/24"


def test_specific_address_with_prefix_is_accepted(ipam):
    pool_id = pool_of(ipam, "10.1.0.0/24")
    assert ipam.request_address(pool_id, "10.1.0.10/24", None) == "10.1.0.10/24"


def test_specific_address_outside_pool_is_refused(ipam, store):
    pool_id = pool_of(ipam, "10.1.0.0/24")
    with pytest.raises(InvalidRequest, match=r"10\.1\.1\.10 is not in pool 10\.1\.0\.0/24"):
        ipam.request_address(pool_id, "10.1.1.10", None)
    with pytest.raises(InvalidRequest, match="is not in pool"):
        ipam.request_address(pool_id, "fd00::1", None)
    assert held_count(store, pool_id) == 0


def test_taken_address_is_a_409_conflict(ipam, store):
    pool_id = pool_of(ipam, "10.1.0.0/24")
    ipam.request_address(pool_id, "10.1.0.10", None)
    with pytest.raises(Conflict) as raised:
        ipam.request_address(pool_id, "10.1.0.10", None)
    assert raised.value.status == 409
    assert raised.value.message == "10.1.0.10 in 10.1.0.0/24 is already in use"
    assert held_count(store, pool_id) == 1


@pytest.mark.parametrize(
    ("pool", "address"),
    [("10.1.0.0/24", "10.1.0.0"), ("10.1.0.0/24", "10.1.0.255"), ("fd00:1::/64", "fd00:1::")],
)
def test_network_broadcast_and_subnet_router_addresses_are_refused(ipam, store, pool, address):
    pool_id = pool_of(ipam, pool)
    with pytest.raises(InvalidRequest, match=f"{address} is the network, broadcast or "):
        ipam.request_address(pool_id, address, None)
    assert held_count(store, pool_id) == 0


def test_malformed_address_is_refused(ipam):
    pool_id = pool_of(ipam, "10.1.0.0/24")
    with pytest.raises(InvalidRequest, match=r"'10\.1\.0\.300' is not an IP address"):
        ipam.request_address(pool_id, "10.1.0.300", None)


def test_aux_address_outside_subpool_but_inside_pool(ipam):
    pool_id = pool_of(ipam, "10.1.0.0/24", "10.1.0.128/25")
    assert ipam.request_address(pool_id, "10.1.0.5", None) == "10.1.0.5/24"
    assert ipam.request_address(pool_id, "", None) == "10.1.0.128/24"


def test_address_from_unknown_pool_is_refused(ipam):
    with pytest.raises(InvalidRequest, match=r"unknown pool 'local/nope'"):
        ipam.request_address("local/nope", "", None)


# --- next free address -------------------------------------------------------


def allocate_all(ipam: IpamService, pool_id: str) -> list[str]:
    """Every dynamic address until the pool reports exhaustion."""
    leased = []
    while True:
        try:
            leased.append(ipam.request_address(pool_id, "", None))
        except Conflict:
            return leased


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        ("10.1.0.0/30", ["10.1.0.1/30", "10.1.0.2/30"]),
        ("10.1.0.0/31", ["10.1.0.0/31", "10.1.0.1/31"]),
        ("10.1.0.7/32", ["10.1.0.7/32"]),
        ("fd00::/126", ["fd00::1/126", "fd00::2/126", "fd00::3/126"]),
        ("fd00::/127", ["fd00::/127", "fd00::1/127"]),
        ("fd00::5/128", ["fd00::5/128"]),
    ],
)
def test_usable_addresses_of_small_pools(ipam, pool, expected):
    assert allocate_all(ipam, pool_of(ipam, pool)) == expected


def test_exhaustion_message(ipam):
    pool_id = pool_of(ipam, "10.1.0.0/24")
    assert len(allocate_all(ipam, pool_id)) == 254
    with pytest.raises(Conflict) as raised:
        ipam.request_address(pool_id, "", None)
    assert raised.value.message == "no free address in 10.1.0.0/24 (254 of 254 in use)"


def test_subpool_exhaustion_names_the_subpool(ipam):
    pool_id = pool_of(ipam, "10.1.0.0/24", "10.1.0.128/25")
    leased = allocate_all(ipam, pool_id)
    assert leased[0] == "10.1.0.128/24"
    assert leased[-1] == "10.1.0.254/24"
    assert len(leased) == 127
    with pytest.raises(
        Conflict, match=r"no free address in 10\.1\.0\.128/25 \(127 of 127 in use\)"
    ):
        ipam.request_address(pool_id, "", None)
    assert ipam.request_address(pool_id, "10.1.0.7", None) == "10.1.0.7/24"


def test_dynamic_allocation_skips_static_and_gateway_addresses(ipam):
    pool_id = pool_of(ipam, "10.1.0.0/29")
    ipam.request_address(pool_id, "", GATEWAY)
    ipam.request_address(pool_id, "10.1.0.3", None)
    assert allocate_all(ipam, pool_id) == [
        "10.1.0.2/29",
        "10.1.0.4/29",
        "10.1.0.5/29",
        "10.1.0.6/29",
    ]


def test_release_then_request_again(ipam):
    pool_id = pool_of(ipam, "10.1.0.0/24")
    ipam.request_address(pool_id, "10.1.0.10", None)
    ipam.release_address(pool_id, "10.1.0.10")
    assert ipam.request_address(pool_id, "10.1.0.10", None) == "10.1.0.10/24"


def test_release_accepts_cidr_form(ipam):
    pool_id = pool_of(ipam, "10.1.0.0/24")
    ipam.request_address(pool_id, "10.1.0.10", None)
    ipam.release_address(pool_id, "10.1.0.10/24")
    assert ipam.request_address(pool_id, "10.1.0.10", None) == "10.1.0.10/24"


def test_cursor_moves_on_then_wraps_around_to_holes(ipam):
    pool_id = pool_of(ipam, "10.1.0.0/29")
    assert allocate_all(ipam, pool_id)[:3] == ["10.1.0.1/29", "10.1.0.2/29", "10.1.0.3/29"]
    ipam.release_address(pool_id, "10.1.0.2")
    ipam.release_address(pool_id, "10.1.0.5")
    assert ipam.request_address(pool_id, "", None) == "10.1.0.2/29"
    assert ipam.request_address(pool_id, "", None) == "10.1.0.5/29"
    with pytest.raises(Conflict, match=r"\(6 of 6 in use\)"):
        ipam.request_address(pool_id, "", None)


def test_just_released_address_is_not_handed_out_next(ipam):
    pool_id = pool_of(ipam, "10.1.0.0/24")
    ipam.request_address(pool_id, "", None)
    ipam.request_address(pool_id, "", None)
    ipam.release_address(pool_id, "10.1.0.1")
    assert ipam.request_address(pool_id, "", None) == "10.1.0.3/24"


# --- releases are idempotent -------------------------------------------------


def test_release_address_of_unknown_pool_or_address_succeeds(ipam, store):
    pool_id = pool_of(ipam, "10.1.0.0/24")
    ipam.request_address(pool_id, "10.1.0.10", None)
    ipam.release_address("local/unknown", "10.1.0.10")
    ipam.release_address(pool_id, "10.1.0.11")
    assert held_count(store, pool_id) == 1


def test_double_release_address_changes_nothing(ipam, store):
    pool_id = pool_of(ipam, "10.1.0.0/24")
    ipam.request_address(pool_id, "10.1.0.10", None)
    ipam.request_address(pool_id, "10.1.0.11", None)
    ipam.release_address(pool_id, "10.1.0.10")
    ipam.release_address(pool_id, "10.1.0.10")
    assert held_count(store, pool_id) == 1
    with pytest.raises(Conflict):
        ipam.request_address(pool_id, "10.1.0.11", None)


def test_release_address_rejects_garbage(ipam):
    with pytest.raises(InvalidRequest, match="'nope' is not an IP address"):
        ipam.release_address("local/x", "nope")


def test_release_unknown_pool_and_double_release_pool_succeed(ipam, store):
    keep = pool_of(ipam, "10.2.0.0/24")
    ipam.request_address(keep, "10.2.0.5", None)
    ipam.release_pool("local/unknown")
    gone = pool_of(ipam, "10.1.0.0/24")
    ipam.release_pool(gone)
    ipam.release_pool(gone)
    assert pool_count(store) == 1
    assert held_count(store, keep) == 1


# --- durability --------------------------------------------------------------


def test_state_persists_across_a_new_store(ipam, state_dir):
    pool_id = pool_of(ipam, "10.1.0.0/24")
    shared = pool_of(ipam, "10.2.0.0/24")
    pool_of(ipam, "10.2.0.0/24")
    ipam.request_address(pool_id, "", GATEWAY)
    ipam.request_address(pool_id, "", None)
    ipam.request_address(pool_id, "10.1.0.50", None)

    reopened = IpamService(Store(state_dir), parse_default_pools(DEFAULTS))
    with pytest.raises(Conflict):
        reopened.request_address(pool_id, "10.1.0.50", None)
    assert reopened.request_address(pool_id, "", GATEWAY) == "10.1.0.1/24"
    assert reopened.request_address(pool_id, "", None) == "10.1.0.3/24"
    with pytest.raises(Conflict, match=r"overlaps pool 10\.1\.0\.0/24"):
        reopened.request_pool("local", "10.1.0.0/16", "", None, False)
    reopened.release_pool(shared)
    assert reopened.request_pool("local", "10.2.0.0/24", "", None, False).pool_id == shared


def test_shared_pool_keeps_its_gateway_until_the_last_network_releases_it(tmp_path):
    ipam = IpamService(Store(tmp_path), ())
    gateway_opts = {"RequestAddressType": "com.docker.network.gateway"}
    first = ipam.request_pool("local", "10.5.0.0/24", "", None, False)
    second = ipam.request_pool("local", "10.5.0.0/24", "", None, False)
    assert first == second
    assert ipam.request_address(first.pool_id, "", gateway_opts) == "10.5.0.1/24"
    assert ipam.request_address(first.pool_id, "", gateway_opts) == "10.5.0.1/24"
    ipam.release_address(first.pool_id, "10.5.0.1")  # one network goes
    ipam.release_pool(first.pool_id)
    with pytest.raises(Conflict):
        ipam.request_address(first.pool_id, "10.5.0.1", None)  # still the other's gateway
    ipam.release_address(first.pool_id, "10.5.0.1")  # the last one goes
    ipam.release_pool(first.pool_id)
    assert ipam.request_pool("local", "10.5.0.0/16", "", None, False)  # nothing left behind


def test_pools_are_read_by_column_name_not_by_position(tmp_path):
    """A pools table whose columns stand in another order (a rebuilt table, a column added
    later) still gives every field its own value."""
    tmp_path.mkdir(exist_ok=True)
    with closing(sqlite3.connect(tmp_path / Store.FILENAME)) as conn:
        conn.execute(
            "CREATE TABLE pools (cursor BLOB, holders INTEGER NOT NULL, last BLOB NOT NULL, "
            "first BLOB NOT NULL, request_key TEXT NOT NULL UNIQUE, subpool TEXT NOT NULL, "
            "cidr TEXT NOT NULL, family INTEGER NOT NULL, address_space TEXT NOT NULL, "
            "id TEXT PRIMARY KEY)"
        )
    store = Store(tmp_path)
    ipam = IpamService(store, ())
    pool_id = ipam.request_pool("global", "10.6.0.0/24", "10.6.0.128/25", None, False).pool_id
    assert ipam.request_address(pool_id, "", None) == "10.6.0.128/24"
    assert ipam.request_address(pool_id, "", None) == "10.6.0.129/24"
    with store.transaction() as tx:
        [pool] = tx.pools()
    assert (pool.id, pool.address_space, pool.family) == (pool_id, "global", 4)
    assert (pool.cidr, pool.subpool, pool.holders) == ("10.6.0.0/24", "10.6.0.128/25", 1)
    assert (pool.first, pool.last) == (int(ipaddress.ip_address("10.6.0.0")), 0x0A0600FF)
    assert pool.cursor == int(ipaddress.ip_address("10.6.0.130"))
