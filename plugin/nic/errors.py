"""How the NIC layer words a device error: one function builds every message.

Every backend and the programming order above them raise through ``vf_error``,
so each message reads "set VF 3 of enp1s0f0 vlan to 100: Operation not
supported" without a call site composing it.
"""

from __future__ import annotations

from plugin.errors import DeviceError
from plugin.nic.base import VfInfo, VfSettings, VlanProto


def vf_label(vf: VfInfo) -> str:
    return f"VF {vf.index} of {vf.pf}"


def setting_text(step: str, values: VfSettings) -> str:
    """How error messages show a step's values: "vlan to 100", "spoofchk to off"."""
    if step == "vlan":
        text = str(values.vlan)
        proto = values.proto or VlanProto.DOT1Q
        if values.qos or proto != VlanProto.DOT1Q:
            text += f" qos {values.qos or 0} proto {proto}"
        return f"vlan to {text}"
    if step == "rate":
        return f"rate to min {values.min_tx_rate} max {values.max_tx_rate} Mbit/s"
    (name,) = values.fields_set() or (step,)
    value = getattr(values, name)
    if isinstance(value, bool):
        value = "on" if value else "off"
    return f"{step} to {value}"


def vf_error(vf: VfInfo, step: str, values: VfSettings, why: str) -> DeviceError:
    """DeviceError "set VF 3 of enp1s0f0 vlan to 100: Operation not supported"."""
    return DeviceError(f"set {vf_label(vf)} {setting_text(step, values)}: {why}")
