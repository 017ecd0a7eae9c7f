"""The NIC layer: the only code that reads sysfs or speaks netlink."""
