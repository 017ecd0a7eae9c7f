"""The VM stage: tests/vm/test_vm.py boots the guest; tests/vm/guest/ runs only inside it.

The guest suites need the emulated igb NIC and root in a throwaway VM, so a
pytest run on the host never collects them (scripts/vm/guest-tests.sh sets
SRIOV_VM_GUEST=1 in the guest).
"""

import os

collect_ignore = [] if os.environ.get("SRIOV_VM_GUEST") == "1" else ["guest"]
