"""This node's own API in process, for the admin and the dashboard: the same
leader-or-forward path as the API views, without HTTP to the node itself.
"""

from __future__ import annotations

import time

from django.conf import settings

from consensus.runtime import current_runtime

from .auth import NOBODY, Caller
from .client import Answer
from .forwarding import answer_in_process, process_forwarder
from .membership_client import MembershipClient
from .membership_views import (
    add_server,
    remove_server,
    servers_body,
    transfer_leadership,
)
from .serializers import NodeStatusSerializer
from .tls import node_ca
from .views import serving_status, submit_command


def node_client(timeout_s: float, caller: Caller = NOBODY) -> MembershipClient:
    """A client of the node this process is for (RAFT_NODE_ID), for
    ``caller``: in process when this process serves it, over HTTP otherwise
    (a process without a runtime, such as a test driving the admin of a
    running cluster open to anyone)."""
    runtime = current_runtime()
    if runtime is None:
        return MembershipClient(settings.RAFT_NODE_ID, timeout_s, ca=node_ca())
    return LocalNode(runtime, timeout_s, caller=caller)


class LocalNode(MembershipClient):
    """A MembershipClient whose calls run on this process's runtime.

    It keeps the client's retries while no leader is known, and its words
    for every outcome, so a page says what the CLI would have said; only
    the hop over loopback HTTP (and a request thread it held) is gone.
    Another node is still asked over HTTP, by the forwarder.
    """

    def __init__(
        self,
        runtime,
        timeout_s: float,
        *,
        forwarder=None,
        caller: Caller = NOBODY,
        clock=time.monotonic,
        sleep=time.sleep,
    ):
        """``caller``: who asks (an admin site's login), passed on to the
        leader and recorded with membership changes."""
        super().__init__(runtime.node_id, timeout_s, clock=clock, sleep=sleep)
        self.runtime = runtime
        self.caller = caller
        self.forwarder = forwarder if forwarder is not None else process_forwarder()

    def _send_command(self, body, remaining_s) -> Answer:
        return answer_in_process(
            lambda: submit_command(
                self.runtime,
                self.forwarder,
                body["command"],
                body.get("client_id"),
                body.get("seq"),
                caller=self.caller,
            )
        )

    def _send_add(self, address, remaining_s) -> Answer:
        return answer_in_process(
            lambda: add_server(
                self.runtime, self.forwarder, address, caller=self.caller
            )
        )

    def _send_remove(self, address, remaining_s) -> Answer:
        return answer_in_process(
            lambda: remove_server(
                self.runtime, self.forwarder, address, caller=self.caller
            )
        )

    def _send_transfer(self, to, remaining_s) -> Answer:
        return answer_in_process(
            lambda: transfer_leadership(
                self.runtime, self.forwarder, to, caller=self.caller
            )
        )

    def _get_servers(self, remaining_s) -> Answer:
        return answer_in_process(
            lambda: Answer(200, servers_body(serving_status(self.runtime)), None)
        )

    def _get_status(self, remaining_s) -> Answer:
        return answer_in_process(
            lambda: Answer(
                200, NodeStatusSerializer(serving_status(self.runtime)).data, None
            )
        )

    def _request(self, method, path, body, remaining_s) -> Answer:
        # Every call has its own in-process method above: none goes over HTTP.
        raise NotImplementedError(f"{method} {path} over HTTP from {self.server}")
