"""The NIC layer: the only code that reads sysfs or speaks netlink."""

from plugin.nic.lean_pyroute2 import register_package_without_catalogue

# Before any module of this layer imports from pyroute2 (see lean_pyroute2).
register_package_without_catalogue()
