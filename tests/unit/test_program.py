import dataclasses

import pytest
from fake_nic import FACTORY, FakeNic

from plugin.errors import DeviceError, InvalidRequest
from plugin.nic.base import VfInfo, VfLinkState, VfSettings, VlanProto
from plugin.nic.program import program_vf, restore_vf

VF = VfInfo(pf="enp1s0f0", index=3, pci="0000:3b:02.3", netdev="enp1s0f0v3", driver="iavf")

EVERYTHING = VfSettings(
    mac="02:00:00:00:00:03",
    vlan=100,
    qos=2,
    proto="802.1ad",
    spoofchk=False,
    trust=True,
    link_state="enable",
    min_tx_rate=10,
    max_tx_rate=100,
    mtu=9000,
)


def test_program_sets_the_mtu_then_the_vf_settings_at_once_then_trust_then_reads_back():
    backend = FakeNic()
    original = program_vf(backend, VF, EVERYTHING)
    assert backend.calls == [
        ("read",),
        ("mtu", 9000),
        ("mac", "02:00:00:00:00:03"),
        ("vlan", (100, 2, "802.1ad")),
        ("rate", (10, 100)),
        ("spoofchk", False),
        ("link_state", "enable"),
        ("trust", True),
        ("read",),
    ]
    assert backend.vf_requests == [["mac", "vlan", "rate", "spoofchk", "link_state"], ["trust"]]
    assert original == FACTORY
    assert backend.settings_of(VF) == EVERYTHING


def test_program_touches_only_the_asked_fields_and_returns_only_their_originals():
    backend = FakeNic()
    original = program_vf(backend, VF, VfSettings(vlan=100, mtu=9000))
    assert backend.calls == [("read",), ("mtu", 9000), ("vlan", (100, 0, "802.1Q")), ("read",)]
    assert original == VfSettings(vlan=0, qos=0, proto="802.1Q", mtu=1500)


def test_program_keeps_qos_and_proto_of_the_vf_when_only_vlan_is_asked():
    backend = FakeNic(VfSettings(**{**FACTORY.__dict__, "qos": 4, "proto": "802.1ad"}))
    program_vf(backend, VF, VfSettings(vlan=7))
    assert backend.calls[1] == ("vlan", (7, 4, "802.1ad"))


def test_program_skips_fields_already_at_the_desired_value():
    backend = FakeNic()
    original = program_vf(backend, VF, VfSettings(vlan=0, spoofchk=True, trust=True))
    assert backend.calls == [("read",), ("trust", True), ("read",)]
    assert original == VfSettings(trust=False)


@pytest.mark.parametrize(
    ("failing", "undone", "undo_requests"),
    [
        ("mtu", [], []),
        ("mac", ["mtu"], []),
        ("vlan", ["mtu", "mac"], [["mac"]]),
        (
            "link_state",
            ["mtu", "mac", "vlan", "rate", "spoofchk"],
            [["mac", "vlan", "rate", "spoofchk"]],
        ),
        (
            "trust",
            ["mtu", "mac", "vlan", "rate", "spoofchk", "link_state"],
            [["mac", "vlan", "rate", "spoofchk", "link_state"]],
        ),
    ],
)
def test_a_refused_step_is_named_and_what_took_effect_is_put_back_mtu_first(
    failing, undone, undo_requests
):
    """The undo is a restore: MTU first (it can reset the VF), then the VF settings at once."""
    backend = FakeNic()
    backend.fail.add(failing)
    with pytest.raises(DeviceError) as err:
        program_vf(backend, VF, EVERYTHING)
    assert backend.settings_of(VF) == FACTORY
    assert err.value.message.startswith(f"set VF 3 of enp1s0f0 {failing} to ")
    if undone:
        assert err.value.message.endswith(f"(undone: {', '.join(undone)})")
        first_undo = len(backend.vf_requests) - len(undo_requests)
        assert backend.vf_requests[first_undo:] == undo_requests
        failed_at = [c[0] for c in backend.calls].index(failing)
        after = [call for call in backend.calls[failed_at + 1 :] if call != ("read",)]
        assert after[0] == ("mtu", 1500)  # the MTU goes back first
    else:
        assert "nothing else had been changed" in err.value.message


def test_failed_undo_is_reported_along_with_the_failure():
    backend = FakeNic()
    backend.fail |= {"trust", "mac:00:00:00:00:00:00"}
    with pytest.raises(DeviceError) as err:
        program_vf(backend, VF, EVERYTHING)
    message = err.value.message
    assert message.startswith("set VF 3 of enp1s0f0 trust to on: Operation not supported")
    assert "(undone: mtu, vlan, rate, spoofchk, link_state)" in message
    assert "undo also failed: set VF 3 of enp1s0f0 mac to 00:00:00:00:00:00" in message


def test_a_bug_in_a_backend_is_not_disguised_as_a_device_error():
    backend = FakeNic()

    def broken_mtu(vf, mtu):
        raise TypeError("set_mtu() got an unexpected keyword argument")

    backend.set_mtu = broken_mtu
    with pytest.raises(TypeError):
        program_vf(backend, VF, VfSettings(vlan=5, mtu=9000))


def test_a_field_the_pf_does_not_hold_after_programming_fails_and_undoes_everything():
    backend = FakeNic()
    real_set_vf = backend.set_vf

    def trust_that_puts_the_old_mac_back(vf, settings):
        real_set_vf(vf, settings)
        if settings.trust:  # as a reset igbvf VF re-registering its old MAC
            backend.by_vf[(vf.pf, vf.index)] = dataclasses.replace(
                backend.settings_of(vf), mac="02:99:99:99:99:99"
            )

    backend.set_vf = trust_that_puts_the_old_mac_back
    with pytest.raises(DeviceError) as err:
        program_vf(backend, VF, VfSettings(mac="02:00:00:00:00:03", trust=True, mtu=9000))
    assert err.value.message == (
        "program VF 3 of enp1s0f0: after programming it reports mac 02:99:99:99:99:99 "
        "instead of 02:00:00:00:00:03 (undone: mtu, mac, trust)"
    )
    assert backend.settings_of(VF) == FACTORY


def test_field_the_device_does_not_report_is_refused_before_any_change():
    backend = FakeNic(VfSettings(**{**FACTORY.__dict__, "trust": None}))
    with pytest.raises(DeviceError) as err:
        program_vf(backend, VF, VfSettings(vlan=5, trust=True))
    assert "trust to on: the device does not report trust" in err.value.message
    assert backend.calls == [("read",)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(vlan=4095), "vlan 4095 out of range 0-4094"),
        (dict(qos=8), "qos 8 out of range 0-7"),
        (dict(proto="802.1x"), "vlan proto '802.1x' is not one of 802.1Q, 802.1ad"),
        (dict(link_state="up"), "link_state 'up' is not one of auto, enable, disable"),
        (dict(mac="02:00:00:00:00"), "mac '02:00:00:00:00' is not of the form 02:42:ac:11:00:02"),
        (dict(mac="01:00:5e:00:00:01"), "multicast"),
        (dict(min_tx_rate=200, max_tx_rate=100), "min_tx_rate 200 is above max_tx_rate"),
        (dict(mtu=67), "mtu 67 out of range 68-65535"),
        (dict(spoofchk="yes"), "spoofchk 'yes' is not true or false"),
    ],
)
def test_settings_no_device_could_take_cannot_be_built(fields, message):
    """So no backend, and no program_vf, ever sees them."""
    with pytest.raises(InvalidRequest, match=message):
        VfSettings(**fields)


def test_settings_normalize_the_mac_and_name_protocol_and_link_state_by_value():
    settings = VfSettings(mac="02:AA:bb:cc:dd:ee", proto="802.1ad", link_state="enable")
    assert settings == VfSettings(
        mac="02:aa:bb:cc:dd:ee", proto=VlanProto.DOT1AD, link_state=VfLinkState.ENABLE
    )


def test_settings_carry_both_rates_or_neither_as_the_device_takes_them():
    assert VfSettings(max_tx_rate=100) == VfSettings(min_tx_rate=0, max_tx_rate=100)
    assert VfSettings(min_tx_rate=10) == VfSettings(min_tx_rate=10, max_tx_rate=0)
    assert (VfSettings().min_tx_rate, VfSettings().max_tx_rate) == (None, None)


def test_restore_puts_back_exactly_the_given_fields_in_order():
    backend = FakeNic(EVERYTHING)
    restore_vf(backend, VF, VfSettings(mtu=1500, vlan=0, qos=0, proto="802.1Q", trust=False))
    assert backend.calls == [("mtu", 1500), ("vlan", (0, 0, "802.1Q")), ("trust", False)]
    assert backend.vf_requests == [["vlan"], ["trust"]]


def test_restore_tries_every_field_and_lists_the_failures():
    backend = FakeNic(EVERYTHING)
    backend.fail |= {"mac", "trust"}
    with pytest.raises(DeviceError) as err:
        restore_vf(backend, VF, FACTORY)
    # MTU; the refused request (stopped at mac), then each of its steps on its own; trust
    assert [c[0] for c in backend.calls] == [
        "mtu",
        "mac",
        "mac",
        "vlan",
        "rate",
        "spoofchk",
        "link_state",
        "trust",
        "trust",
    ]
    assert err.value.message.startswith("restore VF 3 of enp1s0f0: 2 of 7 steps failed: ")
    assert "mac to 00:00:00:00:00:00" in err.value.message
    assert "trust to off" in err.value.message
    assert backend.settings_of(VF).vlan == 0 and backend.settings_of(VF).mtu == 1500


def test_restore_completes_a_partial_group_with_neutral_values():
    backend = FakeNic(EVERYTHING)
    restore_vf(backend, VF, VfSettings(vlan=0, max_tx_rate=0))
    assert backend.calls == [("vlan", (0, 0, "802.1Q")), ("rate", (0, 0))]


def test_restore_refuses_qos_without_its_vlan_but_restores_the_rest():
    backend = FakeNic(EVERYTHING)
    with pytest.raises(DeviceError, match="cannot restore qos of VF 3 of enp1s0f0 without vlan"):
        restore_vf(backend, VF, VfSettings(qos=0, mtu=1500))
    assert backend.calls == [("mtu", 1500)]


def test_restore_of_nothing_does_nothing():
    backend = FakeNic()
    restore_vf(backend, VF, VfSettings())
    assert backend.calls == []


def test_a_snapshot_the_caller_just_read_is_not_read_again():
    backend = FakeNic()
    program_vf(backend, VF, VfSettings(vlan=100), snapshot=FACTORY)
    assert backend.calls == [("vlan", (100, 0, "802.1Q")), ("read",)]
