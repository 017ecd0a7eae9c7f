"""Values the services, the stores and the wire share: options, networks, leases, pools."""
