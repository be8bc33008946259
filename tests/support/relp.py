"""A hand-made RELP client (RFC-less, as librelp speaks it): open a session, send syslog frames, read answers.

For the log host's tests: what an attacker, or a sender that forges, can put on the wire, frame by frame.
"""

from __future__ import annotations

import socket
import ssl

from installer.options import Tls


class Relp:
    """One RELP session to 127.0.0.1:``port``, over TLS with ``tls`` (its certificate, key and CA) or plain."""

    def __init__(self, port: int, tls: Tls | None = None, server_name: str = "loghost") -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca)
            context.load_cert_chain(tls.cert, tls.key)
            sock = context.wrap_socket(sock, server_hostname=server_name)
        self.sock, self.txnr, self.buffer = sock, 0, b""
        assert self.command("open", b"relp_version=0\nrelp_software=trackline-tests\ncommands=syslog").startswith(
            b"200 OK"), "the log host refused the session"

    def command(self, name: str, data: bytes) -> bytes:
        """Send one frame; the data of its answer (``200 OK`` ...), or b"" when the log host closes the session."""
        self.txnr += 1
        frame = f"{self.txnr} {name} {len(data)} ".encode() + data + b"\n"
        try:
            self.sock.sendall(frame)
            return self._answer()
        except OSError:
            return b""

    def syslog(self, hostname: str, app_name: str, message: bytes) -> bytes:
        """One RFC 5424 message as trackline-ship.conf frames it, with any HOSTNAME and APP-NAME."""
        return self.command("syslog", f"<14>1 2026-12-07T12:00:00Z {hostname} {app_name} - - - ".encode() + message)

    def _answer(self) -> bytes:
        """The data of the next ``rsp`` frame (``TXNR rsp LEN DATA\\n``)."""
        while True:
            _, _, rest = self.buffer.partition(b" rsp ")
            if rest:
                length, _, body = rest.partition(b" ")
                if length.isdigit() and len(body) >= int(length):
                    self.buffer = body[int(length) + 1:]
                    return body[:int(length)]
            if b"serverclose" in self.buffer:
                return b""
            chunk = self.sock.recv(65536)
            if not chunk:
                return b""
            self.buffer += chunk

    def close(self) -> None:
        self.sock.close()
