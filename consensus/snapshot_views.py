"""POST /raft/install_snapshot: one chunk of a snapshot file per request.

Apart from consensus/views.py's message views: a chunk is written by the
request thread into the data directory's snapshot store, never through
the loop thread, so a transfer blocks neither the loop nor other requests.
The runtime is told once the file is complete and durable (the
receiver's on_complete).
"""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from .errors import CommandTimeout
from .runtime import current_runtime
from .snapshots.receiver import ChecksumMismatch
from .snapshots.wire import SnapshotChunkReply, chunk_from_dict, reply_to_dict
from .views import NodeUnavailable, PeerView, check_dest


class InstallSnapshotView(PeerView):
    def post(self, request):
        try:
            chunk = chunk_from_dict(request.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        runtime = current_runtime()
        receiver = getattr(runtime, "snapshot_receiver", None)
        node = runtime.status() if runtime is not None else None
        if receiver is None or node is None:
            raise NodeUnavailable()
        check_dest(chunk.dest, runtime)
        runtime.snapshot_chunk_received(chunk.source, chunk.term)
        if chunk.term < node.term:
            # Raft Figure 13: reply immediately if term < currentTerm; the
            # leader learns the newer term from the reply and stops.
            received_offset, done = receiver.offset(), False
        else:
            try:
                received = receiver.receive(chunk)
            except ChecksumMismatch as exc:
                raise ValidationError(str(exc)) from exc
            except CommandTimeout as exc:
                # The loop has not restored it yet: the leader retries the
                # last chunk, and is told again (receiver.receive).
                raise NodeUnavailable(str(exc)) from exc
            received_offset, done = received.offset, received.done
            # The restore may have moved the term on.
            node = runtime.status()
        reply = SnapshotChunkReply(
            term=node.term,
            source=chunk.dest,
            dest=chunk.source,
            offset=received_offset,
            done=done,
        )
        return Response(reply_to_dict(reply), status=status.HTTP_200_OK)
