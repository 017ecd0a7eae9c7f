"""The rules, with no HTTP: networks and endpoints, IPAM, and recovery after a restart."""
