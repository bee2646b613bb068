"""ClusterResolver: answers a parsed DNS query from the current ZoneIndex, or says "not mine" (None) so the
server forwards it. Pure apart from reading the index provider; TTLs are short because the data changes."""

from __future__ import annotations

from collections.abc import Callable

from dnslib import CNAME, PTR, QTYPE, RCODE, RR, SOA, SRV, A, DNSRecord

from clusterdns.records import ZoneIndex, normalize

DEFAULT_TTL = 5  # seconds, CoreDNS' kubernetes plugin default


class ClusterResolver:
    def __init__(self, index: Callable[[], ZoneIndex], ttl: int = DEFAULT_TTL) -> None:
        self._index = index
        self._ttl = ttl

    def resolve(self, request: DNSRecord) -> DNSRecord | None:
        index = self._index()
        qname = normalize(str(request.q.qname))
        qtype = QTYPE[request.q.qtype]
        reverse = qname.endswith(".in-addr.arpa")
        if reverse and qname not in index.ptr:
            return None  # reverse lookups of non-cluster addresses belong to the host's resolver
        if not reverse and not index.in_zone(qname):
            return None
        reply = request.reply()
        reply.header.ra = 1
        if qname in index.cname:
            reply.add_answer(RR(qname, QTYPE.CNAME, rdata=CNAME(index.cname[qname] + "."), ttl=self._ttl))
            return reply
        if qtype in ("A", "ANY"):
            for ip in index.a.get(qname) or index.pod_a(qname):
                reply.add_answer(RR(qname, QTYPE.A, rdata=A(ip), ttl=self._ttl))
        if qtype in ("SRV", "ANY"):
            for srv in index.srv.get(qname, []):
                reply.add_answer(RR(qname, QTYPE.SRV, ttl=self._ttl,
                                    rdata=SRV(srv.priority, srv.weight, srv.port, srv.target + ".")))
                for ip in index.a.get(srv.target, []):
                    reply.add_ar(RR(srv.target, QTYPE.A, rdata=A(ip), ttl=self._ttl))
        if qtype in ("PTR", "ANY") and qname in index.ptr:
            reply.add_answer(RR(qname, QTYPE.PTR, rdata=PTR(index.ptr[qname] + "."), ttl=self._ttl))
        if not reply.rr:
            if not index.exists(qname):
                reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self._soa(index))
        return reply

    def _soa(self, index: ZoneIndex) -> RR:
        zone = index.zone + "."
        return RR(zone, QTYPE.SOA, ttl=self._ttl,
                  rdata=SOA(f"ns.dns.{zone}", f"hostmaster.{zone}", (1, 7200, 1800, 86400, self._ttl)))
