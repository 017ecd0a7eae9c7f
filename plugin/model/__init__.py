"""Values the services, the store and the wire share: network and endpoint options."""
