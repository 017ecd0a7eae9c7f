#!/bin/sh
# Run inside a wire-stage guest (scripts/vm/run.sh scripts/vm/wire-node.sh a|b [PYTEST ARGS...]):
# that node's part of tests/vm/guest/test_wire_node.py. tests/vm/test_wire.py runs this.
export SRIOV_VM_GUEST=1 SRIOV_WIRE_ROLE="$1"
shift
exec .venv/bin/python -m pytest -p no:cacheprovider -q -rA tests/vm/guest/test_wire_node.py "$@"
