"""The simulated SR-IOV NIC: a kernel-shaped sysfs tree plus a real veth/bridge fabric.

The host kernel here has no SR-IOV, so the project simulates a NIC that is real
enough for Docker: under a directory ``root``, what the kernel shows in /sys for
a PF and its VFs, and for every VF a real veth pair in the current network
namespace, its VF end a netdev Docker moves into containers, its peer plugged
into a Linux bridge that stands for the NIC's embedded switch, one per VLAN.

- ``device``: the NIC's operations: create and destroy a PF, apply VF settings,
  a PF's link;
- ``tree``: the sysfs tree, laid out as ``plugin.nic.sysfs`` reads it;
- ``state``: the NIC's "firmware" state files and the root's lock;
- ``fabric``: the embedded switch: bridges per VLAN, switch ports, the fabric's lock;
- ``backend``: ``SimBackend``, the plugin's NicBackend on this NIC;
- ``cli``: ``python -m plugin sim create|destroy|show|link``.
"""
