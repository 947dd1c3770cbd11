"""A linearizable read waits until what it needs is committed in the applied
state, not merely applied in memory (consensus/runtime_reads.py): the state
machine moves its last_applied entry by entry inside the apply transaction,
before a reader's connection can see the rows. Found by the fault runs'
key-value check (a follower answered a read with the state just before a
write acknowledged before the read was sent)."""

import threading

from consensus.runtime_reads import ReadRuntimeMixin


class StateMachine:
    last_applied = 0


class Runtime(ReadRuntimeMixin):
    def __init__(self):
        self.node_id = "127.0.0.1:9001"
        self._state_machine = StateMachine()
        self._init_reads("", None)


def test_a_read_does_not_pass_entries_whose_apply_is_not_committed():
    runtime = Runtime()
    runtime._notify_applied()
    # Mid-batch: the state machine has set last_applied, the transaction
    # that stores the entries has not committed.
    runtime._state_machine.last_applied = 15
    assert not runtime.wait_applied(15, 0.05)
    assert runtime.wait_for_apply(14, 0.05) == 0
    # Committed: the runtime notifies, and the read goes on.
    waited = []
    reader = threading.Thread(target=lambda: waited.append(runtime.wait_applied(15, 5)))
    reader.start()
    runtime._notify_applied()
    reader.join(5)
    assert waited == [True]
    assert runtime.wait_for_apply(14, 0.05) == 15
