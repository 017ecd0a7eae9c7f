import pytest

from plugin.errors import InvalidRequest
from plugin.nic.names import check_ifname, check_pci_address


@pytest.mark.parametrize("name", ["eth0", "enp1s0f0", "a", "x" * 15, "vf-1_a.b", "ä"])
def test_valid_interface_names_pass_unchanged(name):
    assert check_ifname(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("x" * 16, "16 bytes long, the limit is 15"),
        ("ä" * 8, "16 bytes long"),
        (".", "reserved"),
        ("..", "reserved"),
        ("a/b", "contains '/'"),
        ("eth0:1", "contains ':'"),
        ("a b", "whitespace"),
        ("a\u00a0b", "whitespace"),
        ("a\tb", "control character '\\t'"),
        ("a\nb", "control character '\\n'"),
        ("pf\x00x", "control character '\\x00'"),
        ("pf\x1bx", "control character '\\x1b'"),
        ("pf\x7fx", "control character '\\x7f'"),
        ("pf\ud800", "'\\ud800', a lone surrogate"),
        (None, "expected a string"),
        (5, "expected a string"),
    ],
)
def test_invalid_interface_names_are_refused_with_the_reason(name, reason):
    with pytest.raises(InvalidRequest) as err:
        check_ifname(name, "pf_iface")
    assert err.value.message.startswith(f"pf_iface {name!r} is not a valid interface name: ")
    assert reason in err.value.message
    assert not any(ch < " " or "\ud800" <= ch <= "\udfff" for ch in err.value.message)
    assert err.value.status == 400


@pytest.mark.parametrize(
    ("addr", "expected"),
    [("0000:3b:02.0", "0000:3b:02.0"), ("0000:AF:1f.7", "0000:af:1f.7")],
)
def test_pci_addresses_are_accepted_in_sysfs_form(addr, expected):
    assert check_pci_address(addr) == expected


@pytest.mark.parametrize(
    "addr", ["3b:02.0", "0000:3b:02.8", "0000:3b:20.0", "0000:3b:02", "../../x", "", None]
)
def test_other_pci_addresses_are_refused(addr):
    with pytest.raises(InvalidRequest, match="is not a PCI address"):
        check_pci_address(addr)
