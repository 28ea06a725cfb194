"""A real DNS server on 127.0.0.1 (dnslib) serving zones the test writes, over UDP and TCP.

    def test_x(dns_server):
        dns_server.serve({"example.com": {"TXT": ["v=spf1 -all"], "MX": [(10, "mx.example.com")]},
                          "10.2.0.192.in-addr.arpa": {"PTR": ["mail.example.com"]}})
        ... --nameserver 127.0.0.1:{dns_server.port}

A name that is not in the zone answers NXDOMAIN; a known name without the asked type answers
NOERROR with no records (as an authoritative server does); a name served as
{"RCODE": "SERVFAIL"} answers that error to every query.
"""
from __future__ import annotations

import socket
import threading

import pytest
from dnslib import AAAA, MX, PTR, QTYPE, RCODE, RR, TXT, A
from dnslib.server import DNSLogger, DNSServer


def _rdata(rtype: str, value):
    if rtype == "A":
        return A(value)
    if rtype == "AAAA":
        return AAAA(value)
    if rtype == "MX":
        preference, host = value
        return MX(host, preference)
    if rtype == "PTR":
        return PTR(value)
    if rtype == "TXT":
        data = value.encode()
        return TXT([data[i:i + 255] for i in range(0, len(data), 255)] or [b""])
    raise ValueError(f"unsupported record type {rtype}")


class ZoneResolver:
    def __init__(self):
        self.zone: dict[str, dict[str, list]] = {}
        self.lock = threading.Lock()
        self.queries: list[tuple[str, str]] = []

    def resolve(self, request, handler):
        reply = request.reply()
        qname = str(request.q.qname).lower().rstrip(".")
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((qname, qtype))
            records = self.zone.get(qname)
        if records is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if "RCODE" in records:
            reply.header.rcode = getattr(RCODE, records["RCODE"])
            return reply
        for value in records.get(qtype, []):
            reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=_rdata(qtype, value), ttl=60))
        return reply


def _free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port


class DnsServer:
    def __init__(self):
        self.resolver = ZoneResolver()
        self.port = _free_port()
        quiet = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-data", prefix=False)
        self.servers = [DNSServer(self.resolver, address="127.0.0.1", port=self.port, tcp=tcp,
                                  logger=quiet) for tcp in (False, True)]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def serve(self, zone: dict[str, dict[str, list]]) -> None:
        with self.resolver.lock:
            self.resolver.zone = {name.lower().rstrip("."): dict(rr) for name, rr in zone.items()}
            self.resolver.queries.clear()

    def start(self) -> None:
        for server in self.servers:
            server.start_thread()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
            server.server.server_close()


@pytest.fixture(scope="module")
def dns_server():
    server = DnsServer()
    server.start()
    yield server
    server.stop()
