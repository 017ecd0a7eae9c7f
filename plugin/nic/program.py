"""Apply VF settings and restore the originals, the same way for every backend.

``program_vf`` snapshots the VF first and applies only what was asked, in an
order that later steps cannot undo: the MTU first, on the VF's own netdev; then
the VF settings in one request through the PF, which the kernel applies in its
own order (``VF_SETTING_GROUPS``) and stops at the first the driver refuses;
trust last, in a request of its own. A VF that resets (igbvf
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

from dataclasses import dataclass, field
from typing import TypeVar

from plugin.errors import DeviceError
from plugin.nic.base import (
    VF_SETTING_GROUPS,
    NicBackend,
    VfInfo,
    VfRefused,
    VfSettings,
    VlanProto,
    merge_settings,
)
from plugin.nic.errors import vf_error, vf_label


@dataclass(frozen=True)
class Step:
    """A group of fields the device takes together, and neutral values to complete it."""

    name: str
    fields: tuple[str, ...]
    neutral: VfSettings = field(default_factory=VfSettings)  # completes a partial group

    def of(self, settings: VfSettings) -> VfSettings:
        """This step's fields of ``settings``; the others None."""
        return settings.only(self.fields)


# What completes a partial group when it is restored (the device takes the group whole).
NEUTRAL = {"vlan": VfSettings(qos=0, proto=VlanProto.DOT1Q)}

MTU = Step("mtu", ("mtu",))
# The VF settings in the kernel's order; VfSettings has both rates or neither.
VF_STEPS = tuple(
    Step(name, names, NEUTRAL.get(name, VfSettings())) for name, names in VF_SETTING_GROUPS
)
TRUST = next(step for step in VF_STEPS if step.name == "trust")  # last, in a request of its own
STEPS = (MTU, *VF_STEPS)


@dataclass(frozen=True)
class Change:
    """A step with values: those it replaced (once done), or those to put back (restoring)."""

    step: Step
    values: VfSettings


@dataclass(frozen=True)
class Planned:
    """One step to run: the values it replaces and the values it sets."""

    step: Step
    before: VfSettings
    target: VfSettings


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
    original = backend.read_vf(vf) if snapshot is None else snapshot
    plan = _plan(vf, original, desired)
    done: list[Change] = []
    if plan and plan[0].step is MTU:
        first = plan.pop(0)
        try:
            _apply(backend, vf, first.step, first.target)
        except DeviceError as err:
            raise DeviceError(err.message + _undo(backend, vf, done)) from err
        done.append(Change(first.step, first.before))
    for request in _vf_requests(plan):
        _apply_vf_steps(backend, vf, request, done)
    if done:
        _check_read_back(backend, vf, desired, done)
    return merge_settings(change.values for change in done)


def _apply_vf_steps(
    backend: NicBackend, vf: VfInfo, plan: list[Planned], done: list[Change]
) -> None:
    """Send every planned VF setting in one request; on a refusal, find and name the step.

    The kernel applies a request's settings in order and stops at the first the
    driver refuses, without saying which: the VF read back shows which steps
    took effect (those are undone) and the first that did not is the one named.
    """
    try:
        backend.set_vf(vf, merge_settings(entry.target for entry in plan))
    except VfRefused as err:
        try:
            now = backend.read_vf(vf)
        except DeviceError:
            now = None
        applied = [Change(e.step, e.before) for e in plan if now and _holds(now, e.target)]
        failed = next((e for e in plan if not (now and _holds(now, e.target))), plan[-1])
        message = vf_error(vf, failed.step.name, failed.target, err.why).message
        raise DeviceError(message + _undo(backend, vf, done + applied)) from err
    done.extend(Change(entry.step, entry.before) for entry in plan)


Entry = TypeVar("Entry", Planned, Change)


def _vf_requests(entries: list[Entry]) -> list[list[Entry]]:
    """Plan (or restore) entries as PF requests: the VF settings together, trust after them."""
    together = [entry for entry in entries if entry.step is not TRUST]
    trust = [entry for entry in entries if entry.step is TRUST]
    return [request for request in (together, trust) if request]


def _holds(now: VfSettings, values: VfSettings) -> bool:
    return now.only(values.fields_set()) == values


def _apply(backend: NicBackend, vf: VfInfo, step: Step, values: VfSettings) -> None:
    if step is MTU:
        backend.set_mtu(vf, values.mtu)
    else:
        try:
            backend.set_vf(vf, values)
        except VfRefused as err:
            raise vf_error(vf, step.name, values, err.why) from err


def _check_read_back(
    backend: NicBackend, vf: VfInfo, desired: VfSettings, done: list[Change]
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


def _plan(vf: VfInfo, original: VfSettings, desired: VfSettings) -> list[Planned]:
    """The steps to run, checked before any change: each step that changes something."""
    plan = []
    for step in STEPS:
        asked = step.of(desired)
        if not asked.fields_set():
            continue
        before = step.of(original)
        unreported = [f for f in step.fields if getattr(before, f) is None]
        if unreported:
            raise vf_error(
                vf,
                step.name,
                asked.filled_from(before),
                f"the device does not report {', '.join(unreported)}, so the original could "
                "not be restored; nothing was changed",
            )
        target = asked.filled_from(before)
        if target != before:
            plan.append(Planned(step, before, target))
    return plan


def _undo(backend: NicBackend, vf: VfInfo, done: list[Change]) -> str:
    """Put back what the completed steps changed, as a restore does; a note for the error."""
    if not done:
        return " (nothing else had been changed)"
    failed = _put_back(backend, vf, done)
    changed = {change.step for change in done}
    undone = [step.name for step in STEPS if step in changed and step.name not in failed]
    note = f" (undone: {', '.join(undone)})" if undone else ""
    if failed:
        note += f" (undo also failed: {'; '.join(failed.values())})"
    return note


def restore_vf(backend: NicBackend, vf: VfInfo, original: VfSettings) -> None:
    """Put back exactly the non-None fields of ``original``: MTU, the VF settings, trust.

    If the device refuses the VF settings, each is tried on its own so that all
    that can be restored are; DeviceError then lists the failures. A partial
    VLAN group is completed with neutral values (qos 0, proto 802.1Q)
    because the device takes the group in one call.
    """
    failed, steps = [], []
    for step in STEPS:
        given = step.of(original)
        if not given.fields_set():
            continue
        values = given.filled_from(step.neutral)
        missing = [f for f in step.fields if getattr(values, f) is None]
        if missing:
            failed.append(
                f"cannot restore {', '.join(given.fields_set())} of {vf_label(vf)} "
                f"without {', '.join(missing)}"
            )
            continue
        steps.append(Change(step, values))
    attempted = len(failed) + len(steps)
    failed.extend(_put_back(backend, vf, steps).values())
    if failed:
        raise DeviceError(
            f"restore {vf_label(vf)}: {len(failed)} of {attempted} steps failed: "
            + "; ".join(failed)
        )


def _put_back(backend: NicBackend, vf: VfInfo, steps: list[Change]) -> dict[str, str]:
    """Apply ``steps`` the way a restore must; the failed ones' messages by name.

    The MTU goes first: an MTU change can reset the VF, and on igb a reset VF
    registers its netdev's MAC again, which must not happen after the admin MAC
    is put back (a cleared admin MAC would then read as the VF's own MAC). The
    VF settings follow in one request (each on its own if that is refused), and
    trust last.
    """
    ordered = sorted(steps, key=lambda change: STEPS.index(change.step))
    failed = {}
    if ordered and ordered[0].step is MTU:
        failed.update(_restore_each(backend, vf, [ordered.pop(0)]))
    for request in _vf_requests(ordered):
        try:
            backend.set_vf(vf, merge_settings(change.values for change in request))
        except VfRefused:
            failed.update(_restore_each(backend, vf, request))
    return failed


def _restore_each(backend: NicBackend, vf: VfInfo, steps: list[Change]) -> dict[str, str]:
    """Apply each step on its own; the messages of those that failed, by step name."""
    failed = {}
    for change in steps:
        try:
            _apply(backend, vf, change.step, change.values)
        except DeviceError as err:
            failed[change.step.name] = err.message
    return failed
