#!/bin/sh
# Run inside the VM (scripts/vm/run.sh scripts/vm/guest-tests.sh [PYTEST ARGS...]): the guest
# suites under tests/vm/guest on the emulated igb NIC. tests/vm/test_vm.py runs this.
export SRIOV_VM_GUEST=1
exec .venv/bin/python -m pytest -p no:cacheprovider -q -rA tests/vm/guest "$@"
