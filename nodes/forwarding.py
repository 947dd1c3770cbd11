"""A follower sends a client's command on to the leader and relays its answer."""

import threading

from .client import (
    FORWARDED_HEADER,
    Answer,
    ConnectionLost,
    Unreachable,
    new_session,
    request_json,
)
from .errors import NoLeader, TimedOut


class Forwarder:
    """Forwards POST /api/commands (and membership writes) to the leader.

    One instance serves a process (CommandsView.forwarder). Each request
    thread keeps its own requests.Session, since Session is not documented
    as thread-safe, and that session keeps the connection to the leader
    alive from one forwarded command to the next.
    """

    def __init__(self, connect_timeout_s: float = 2.0, read_margin_s: float = 2.0):
        self.connect_timeout_s = connect_timeout_s
        # The leader answers within its own command timeout (200 or 504);
        # waiting a little longer lets that answer, not a read timeout, win.
        self.read_margin_s = read_margin_s
        self._local = threading.local()

    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = new_session()
        return session

    def forward_command(self, leader_id: str, body: dict, timeout_s: float) -> Answer:
        """Send ``body`` to the leader's /api/commands and return its answer:
        a 200 with index and term, or an API error shape to relay as is.

        Raise NoLeader if nothing reached the leader, TimedOut if the
        command may have reached it but no usable answer came back.
        """
        return self.forward(
            leader_id, "POST", "/api/commands", body, timeout_s, _is_commit
        )

    def forward(self, leader_id, method, path, body, timeout_s, accept=None) -> Answer:
        """Send a write to the leader's ``path`` and return its answer: one
        that ``accept`` takes (default: any 200 JSON object) or an API
        error shape to relay as is. Raise NoLeader or TimedOut as above."""
        accept = accept or _is_json_200
        try:
            answer = request_json(
                self._session(),
                method,
                f"http://{leader_id}{path}",
                json=body,
                headers={FORWARDED_HEADER: "1"},
                timeout=(self.connect_timeout_s, timeout_s + self.read_margin_s),
            )
        except Unreachable as exc:
            raise NoLeader(
                f"The leader {leader_id} is unreachable ({exc.reason}); "
                "nothing was appended. Retry later.",
                leader=leader_id,
            ) from None
        except ConnectionLost as exc:
            raise TimedOut(
                f"Forwarded to the leader {leader_id} but got no answer "
                f"({exc.reason}); the command may or may not commit.",
                leader=leader_id,
            ) from None
        if accept(answer) or _is_api_error(answer):
            return answer
        raise TimedOut(
            f"The leader {leader_id} gave an unexpected answer (HTTP {answer.status}); "
            "the command may or may not commit.",
            leader=leader_id,
        )


def _is_json_200(answer: Answer) -> bool:
    return answer.status == 200 and answer.body is not None


def _is_commit(answer: Answer) -> bool:
    body = answer.body
    return (
        answer.status == 200
        and body is not None
        and isinstance(body.get("index"), int)
        and isinstance(body.get("term"), int)
    )


def _is_api_error(answer: Answer) -> bool:
    body = answer.body
    return (
        answer.status >= 400 and body is not None and isinstance(body.get("error"), str)
    )
