"""What the kernel's rtnetlink checks of a VF request's bytes, for the unit tests.

Every IFLA_VF_* attribute must be at least the size of its kernel struct, or the
kernel answers EINVAL (net/core/rtnetlink.c, ifla_vf_policy and
ifla_vf_vlan_list's entries).
"""

import errno
import struct

from pyroute2.netlink.exceptions import NetlinkError

# include/uapi/linux/if_link.h: IFLA_VF_* attribute type -> sizeof its struct.
KERNEL_VF_SIZES = {1: 36, 2: 12, 3: 8, 4: 8, 5: 8, 6: 12, 7: 8, 9: 8, 10: 16, 11: 16}
IFLA_VFINFO_LIST, IFLA_VF_INFO, IFLA_VF_VLAN_LIST, IFLA_VF_VLAN_INFO = 22, 1, 12, 1
VLAN_INFO_SIZE = 16  # sizeof(struct ifla_vf_vlan_info), tail padding included
IFINFOMSG_OFFSET = 32  # struct nlmsghdr (16) + struct ifinfomsg (16)


def attributes(data: bytes):
    """(type, payload) of each netlink attribute in ``data``."""
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        yield kind & 0x3FFF, data[offset + 4 : offset + length]
        offset += (length + 3) & ~3


def kernel_checks_vf_lengths(data: bytes) -> None:
    """Raise EINVAL where rtnetlink would: a VF attribute shorter than its struct."""
    for kind, payload in attributes(data[IFINFOMSG_OFFSET:]):
        if kind != IFLA_VFINFO_LIST:
            continue
        for _info, vf_attrs in attributes(payload):
            for vf_kind, value in attributes(vf_attrs):
                if vf_kind == IFLA_VF_VLAN_LIST:
                    for _entry, vlan_info in attributes(value):
                        if len(vlan_info) < VLAN_INFO_SIZE:
                            raise NetlinkError(errno.EINVAL, "IFLA_VF_VLAN_INFO too short")
                elif len(value) < KERNEL_VF_SIZES.get(vf_kind, 0):
                    raise NetlinkError(errno.EINVAL, f"IFLA_VF attribute {vf_kind} too short")
