"""The NIC layer: the only code that reads sysfs or speaks netlink."""

from plugin.nic.pyroute2_fixes import register_package_without_catalogue

# Before any module of this layer imports from pyroute2 (see pyroute2_fixes).
register_package_without_catalogue()
