"""raftsite.worker's _HeadHoldingSocket: a response's head leaves with its
body in one send, and never after it or not at all."""

from raftsite.worker import COALESCE_BYTES, _HeadHoldingSocket


class RecordingSocket:
    def __init__(self):
        self.sends = []

    def sendall(self, data):
        self.sends.append(bytes(data))

    def sendfile(self, file, offset=0, count=None):
        self.sends.append(("file", file))

    def getpeercert(self):
        return None


def test_head_and_small_body_leave_in_one_send():
    sock = RecordingSocket()
    holding = _HeadHoldingSocket(sock)
    holding.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
    assert sock.sends == []
    holding.sendall(b'{"index":1}')
    holding.release()
    assert sock.sends == [b'HTTP/1.1 200 OK\r\n\r\n{"index":1}']


def test_later_pieces_are_sent_as_they_come():
    sock = RecordingSocket()
    holding = _HeadHoldingSocket(sock)
    for piece in (b"head", b"one", b"two"):
        holding.sendall(piece)
    assert sock.sends == [b"headone", b"two"]


def test_a_large_body_is_not_copied_onto_the_head():
    sock = RecordingSocket()
    holding = _HeadHoldingSocket(sock)
    body = b"x" * (COALESCE_BYTES + 1)
    holding.sendall(b"head")
    holding.sendall(body)
    assert sock.sends == [b"head", body]


def test_a_head_without_a_body_goes_on_release():
    sock = RecordingSocket()
    holding = _HeadHoldingSocket(sock)
    holding.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
    holding.release()
    holding.release()
    assert sock.sends == [b"HTTP/1.1 204 No Content\r\n\r\n"]


def test_a_file_goes_after_the_head():
    sock = RecordingSocket()
    holding = _HeadHoldingSocket(sock)
    holding.sendall(b"head")
    holding.sendfile("f")
    assert sock.sends == [b"head", ("file", "f")]
    assert holding.getpeercert() is None  # the rest is the socket's own
