"""sriov: a Docker network and IPAM plugin that leases SR-IOV virtual functions."""
