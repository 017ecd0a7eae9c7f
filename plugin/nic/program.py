"""Apply VF settings and restore the originals, the same way for every backend.

``program_vf`` snapshots the VF first and applies only what was asked, in an
order that later steps cannot undo: the MTU first, on the VF's own netdev; then
the VF settings in one request through the PF, which the kernel applies in its
own order (MAC, VLAN, rates, spoofchk, link state) and stops at the first the
driver refuses; trust last, in a request of its own. A VF that resets (igbvf
does on an MTU change, and the backend makes it reset so that its netdev takes
a new admin MAC) re-registers its netdev's old MAC, and a trusted VF is allowed
to, which would replace the admin MAC just set: so nothing that resets the VF
runs after trust is turned on. It then reads the VF back through the PF and
treats any field that does not say what was asked as a failure. On any
failure it undoes what it did. It returns the original values of the fields it
changed; the caller stores them durably and later hands them to
``restore_vf``, which puts back exactly those.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from plugin.errors import DeviceError, InvalidRequest
from plugin.nic.base import LINK_STATES, VLAN_PROTOS, NicBackend, VfInfo, VfRefused, VfSettings

_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
MIN_MTU = 68
MAX_MTU = 65535


@dataclass(frozen=True)
class Step:
    """A group of fields the device takes together, and neutral values to complete it."""

    name: str
    fields: tuple[str, ...]
    defaults: tuple[tuple[str, object], ...] = ()  # for restoring a partial group


MTU = Step("mtu", ("mtu",))
TRUST = Step("trust", ("trust",))
# The VF settings sent together, in the order rtnetlink applies them (do_setvfinfo).
VF_STEPS = (
    Step("mac", ("mac",)),
    Step("vlan", ("vlan", "qos", "proto"), (("qos", 0), ("proto", "802.1Q"))),
    Step("rate", ("min_tx_rate", "max_tx_rate"), (("min_tx_rate", 0), ("max_tx_rate", 0))),
    Step("spoofchk", ("spoofchk",)),
    Step("link_state", ("link_state",)),
)
STEPS = (MTU, *VF_STEPS, TRUST)


def vf_label(vf: VfInfo) -> str:
    return f"VF {vf.index} of {vf.pf}"


def setting_text(step: str, values: dict) -> str:
    """How error messages show a step's values: "vlan to 100", "spoofchk to off"."""
    if step == "vlan":
        text = str(values["vlan"])
        if values.get("qos") or values.get("proto", "802.1Q") != "802.1Q":
            text += f" qos {values.get('qos', 0)} proto {values.get('proto', '802.1Q')}"
        return f"vlan to {text}"
    if step == "rate":
        return (
            f"rate to min {values['min_tx_rate']} max {values['max_tx_rate']} Mbit/s"
            if "min_tx_rate" in values
            else f"rate to {values}"
        )
    (value,) = values.values()
    if isinstance(value, bool):
        value = "on" if value else "off"
    return f"{step} to {value}"


def vf_error(vf: VfInfo, step: str, values: dict, why: str) -> DeviceError:
    """DeviceError "set VF 3 of enp1s0f0 vlan to 100: Operation not supported"."""
    return DeviceError(f"set {vf_label(vf)} {setting_text(step, values)}: {why}")


def check_settings(settings: VfSettings) -> None:
    """Raise InvalidRequest for the first value no device could accept."""
    s = settings
    _check_int("vlan", s.vlan, 0, 4094)
    _check_int("qos", s.qos, 0, 7)
    _check_int("min_tx_rate", s.min_tx_rate, 0, 2**32 - 1)
    _check_int("max_tx_rate", s.max_tx_rate, 0, 2**32 - 1)
    _check_int("mtu", s.mtu, MIN_MTU, MAX_MTU)
    if s.proto is not None and s.proto not in VLAN_PROTOS:
        raise InvalidRequest(f"vlan proto {s.proto!r} is not one of {', '.join(VLAN_PROTOS)}")
    if s.link_state is not None and s.link_state not in LINK_STATES:
        raise InvalidRequest(f"link_state {s.link_state!r} is not one of {', '.join(LINK_STATES)}")
    for name in ("spoofchk", "trust"):
        if getattr(s, name) is not None and not isinstance(getattr(s, name), bool):
            raise InvalidRequest(f"{name} {getattr(s, name)!r} is not true or false")
    if s.mac is not None:
        if not isinstance(s.mac, str) or not _MAC.fullmatch(s.mac.lower()):
            raise InvalidRequest(f"mac {s.mac!r} is not a MAC address like 02:00:00:aa:bb:cc")
        if int(s.mac[:2], 16) & 1:
            raise InvalidRequest(f"mac {s.mac} is a multicast address; a VF needs a unicast one")
    if s.max_tx_rate and s.min_tx_rate and s.min_tx_rate > s.max_tx_rate:
        raise InvalidRequest(
            f"min_tx_rate {s.min_tx_rate} is above max_tx_rate {s.max_tx_rate} (Mbit/s)"
        )


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidRequest(f"{name} {value!r} out of range {low}-{high}")


def program_vf(
    backend: NicBackend, vf: VfInfo, desired: VfSettings, snapshot: VfSettings | None = None
) -> VfSettings:
    """Apply the non-None fields of ``desired``; return the originals of what changed.

    ``snapshot`` is the VF's current settings if the caller has just read them
    (to record them before the first change); otherwise they are read here.
    A group written together (vlan+qos+proto, min+max rate) is returned whole.
    Fields already at the desired value are left alone and not returned. If a
    step fails, the completed steps are undone in reverse order and DeviceError
    names the failed step (and any undo that failed too).
    """
    check_settings(desired)
    original = backend.read_vf(vf) if snapshot is None else snapshot
    plan = _plan(vf, original, desired)
    done: list[tuple[Step, dict]] = []
    if plan and plan[0][0] is MTU:
        step, before, target = plan.pop(0)
        try:
            _apply(backend, vf, step, target)
        except DeviceError as err:
            raise DeviceError(err.message + _undo(backend, vf, done)) from err
        done.append((step, before))
    for request in _vf_requests(plan):
        _apply_vf_steps(backend, vf, request, done)
    if done:
        _check_read_back(backend, vf, desired, done)
    changed = {field: value for _step, before in done for field, value in before.items()}
    return VfSettings(**changed)


def _apply_vf_steps(
    backend: NicBackend,
    vf: VfInfo,
    plan: list[tuple[Step, dict, dict]],
    done: list[tuple[Step, dict]],
) -> None:
    """Send every planned VF setting in one request; on a refusal, find and name the step.

    The kernel applies a request's settings in order and stops at the first the
    driver refuses, without saying which: the VF read back shows which steps
    took effect (those are undone) and the first that did not is the one named.
    """
    targets = {field: value for _step, _before, target in plan for field, value in target.items()}
    try:
        backend.set_vf(vf, VfSettings(**targets))
    except VfRefused as err:
        try:
            now = backend.read_vf(vf)
        except DeviceError:
            now = None
        applied = [(s, b) for s, b, t in plan if now and _holds(now, t)]
        failed = next(((s, t) for s, _b, t in plan if not (now and _holds(now, t))), None)
        step, target = failed or (plan[-1][0], plan[-1][2])
        message = vf_error(vf, step.name, target, err.why).message
        raise DeviceError(message + _undo(backend, vf, done + applied)) from err
    done.extend((step, before) for step, before, _target in plan)


def _vf_requests(entries: list) -> list[list]:
    """Plan (or restore) entries as PF requests: the VF settings together, trust after them."""
    together = [entry for entry in entries if entry[0] is not TRUST]
    trust = [entry for entry in entries if entry[0] is TRUST]
    return [request for request in (together, trust) if request]


def _holds(now: VfSettings, values: dict) -> bool:
    return all(getattr(now, field) == value for field, value in values.items())


def _apply(backend: NicBackend, vf: VfInfo, step: Step, values: dict) -> None:
    if step is MTU:
        backend.set_mtu(vf, values["mtu"])
    else:
        try:
            backend.set_vf(vf, VfSettings(**values))
        except VfRefused as err:
            raise vf_error(vf, step.name, values, err.why) from err


def _check_read_back(
    backend: NicBackend, vf: VfInfo, desired: VfSettings, done: list[tuple[Step, dict]]
) -> None:
    """Read the VF back; undo everything and fail if a field differs from what was asked.

    A driver may accept a setting and still not hold it (a VF reset can put an
    old MAC back), and Kata finds the VF by its admin MAC: a VF that does not
    say what the endpoint was told must not be handed out.
    """
    try:
        now = backend.read_vf(vf)
    except DeviceError as err:
        raise DeviceError(err.message + _undo(backend, vf, done)) from err
    wrong = [
        f"{name} {getattr(now, name)} instead of {getattr(desired, name)}"
        for name in _asked_fields(desired)
        if getattr(now, name) is not None and getattr(now, name) != getattr(desired, name)
    ]
    if wrong:
        raise DeviceError(
            f"program {vf_label(vf)}: after programming it reports {', '.join(wrong)}"
            + _undo(backend, vf, done)
        )


def _asked_fields(desired: VfSettings) -> list[str]:
    return [f for step in STEPS for f in step.fields if getattr(desired, f) is not None]


def _plan(vf: VfInfo, original: VfSettings, desired: VfSettings):
    """The steps to run as (step, original values, target values), checked before any change."""
    plan = []
    for step in STEPS:
        asked = {f: getattr(desired, f) for f in step.fields if getattr(desired, f) is not None}
        if not asked:
            continue
        before = {f: getattr(original, f) for f in step.fields}
        unreported = [f for f, v in before.items() if v is None]
        if unreported:
            raise vf_error(
                vf,
                step.name,
                {**dict(step.defaults), **before, **asked},
                f"the device does not report {', '.join(unreported)}, so the original could "
                "not be restored; nothing was changed",
            )
        target = {**before, **asked}
        if target != before:
            plan.append((step, before, target))
    return plan


def _undo(backend: NicBackend, vf: VfInfo, done: list[tuple[Step, dict]]) -> str:
    """Put back what the completed steps changed, as a restore does; a note for the error."""
    if not done:
        return " (nothing else had been changed)"
    failed = _put_back(backend, vf, done)
    changed = {step for step, _before in done}
    undone = [step.name for step in STEPS if step in changed and step.name not in failed]
    note = f" (undone: {', '.join(undone)})" if undone else ""
    if failed:
        note += f" (undo also failed: {'; '.join(failed.values())})"
    return note


def restore_vf(backend: NicBackend, vf: VfInfo, original: VfSettings) -> None:
    """Put back exactly the non-None fields of ``original``: MTU, the VF settings, trust.

    If the device refuses the VF settings, each is tried on its own so that all
    that can be restored are; DeviceError then lists the failures. A partial
    group is completed with neutral values (qos 0, proto 802.1Q, rate 0)
    because the device takes the group in one call.
    """
    failed, steps = [], []
    for step in STEPS:
        given = {f: getattr(original, f) for f in step.fields if getattr(original, f) is not None}
        if not given:
            continue
        values = {**dict(step.defaults), **given}
        if len(values) != len(step.fields):
            missing = ", ".join(f for f in step.fields if f not in values)
            failed.append(f"cannot restore {', '.join(given)} of {vf_label(vf)} without {missing}")
            continue
        steps.append((step, values))
    attempted = len(failed) + len(steps)
    failed.extend(_put_back(backend, vf, steps).values())
    if failed:
        raise DeviceError(
            f"restore {vf_label(vf)}: {len(failed)} of {attempted} steps failed: "
            + "; ".join(failed)
        )


def _put_back(backend: NicBackend, vf: VfInfo, steps: list[tuple[Step, dict]]) -> dict[str, str]:
    """Apply ``steps`` (step, values) the way a restore must; the failed ones' messages by name.

    The MTU goes first: an MTU change can reset the VF, and on igb a reset VF
    registers its netdev's MAC again, which must not happen after the admin MAC
    is put back (a cleared admin MAC would then read as the VF's own MAC). The
    VF settings follow in one request (each on its own if that is refused), and
    trust last.
    """
    ordered = sorted(steps, key=lambda entry: STEPS.index(entry[0]))
    failed = {}
    if ordered and ordered[0][0] is MTU:
        failed.update(_restore_each(backend, vf, [ordered.pop(0)]))
    for request in _vf_requests(ordered):
        targets = {field: value for _step, values in request for field, value in values.items()}
        try:
            backend.set_vf(vf, VfSettings(**targets))
        except VfRefused:
            failed.update(_restore_each(backend, vf, request))
    return failed


def _restore_each(
    backend: NicBackend, vf: VfInfo, steps: list[tuple[Step, dict]]
) -> dict[str, str]:
    """Apply each step on its own; the messages of those that failed, by step name."""
    failed = {}
    for step, values in steps:
        try:
            _apply(backend, vf, step, values)
        except DeviceError as err:
            failed[step.name] = err.message
    return failed
