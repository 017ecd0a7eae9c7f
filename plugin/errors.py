"""The plugin's error classes.

Every failure that leaves the plugin is one of these, mapped to an HTTP status
and answered as ``{"Err": message}``. Messages name the operation, the thing and
the value, and where it helps, the fix. They start with what went wrong, never
with the protocol method: Docker puts that in front of every error it shows.
"""


class PluginError(Exception):
    """Base class; ``status`` is the HTTP status Docker receives."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(PluginError):
    """The request is wrong (bad option, malformed value, unknown id)."""

    status = 400


class Conflict(PluginError):
    """The request is well formed but collides with what is held (taken address, no free VF)."""

    status = 409


class DeviceError(PluginError):
    """sysfs or netlink refused an operation on a device."""

    status = 500


class StoreError(PluginError):
    """The state store failed."""

    status = 500


class TransactionConflict(Exception):
    """An optimistic store found, at commit, that another writer changed what was read.

    Not a PluginError: it never leaves the plugin. The IPAM service runs the
    request again (``plugin.services.ipam.run_atomically``).
    """
