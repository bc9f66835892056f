#!/usr/bin/env python3
"""Write the seed corpus under fuzz/corpus/: packets shaped as the
integration tests' stock clients send them (udhcpc, dhclient, a relay,
a PXE ROM; dig; tftp-hpa/atftp and the EDK2 size probe). Run from
anywhere; rewrites the files deterministically."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- DHCP (RFC 2131 / 2132) ----
MAC = bytes.fromhex("020000770042")


def ip(s):
    return bytes(int(x) for x in s.split("."))


def opt(code, data):
    return bytes([code, len(data)]) + data


def dhcp(mtype, opts, ciaddr="0.0.0.0", giaddr="0.0.0.0", hops=0, flags=0, mac=MAC):
    hdr = struct.pack("!BBBBIHH", 1, 1, 6, hops, 0x3903F326, 3, flags)
    hdr += ip(ciaddr) + ip("0.0.0.0") + ip("0.0.0.0") + ip(giaddr)
    hdr += mac + bytes(16 - len(mac)) + bytes(64) + bytes(128)
    body = bytes([99, 130, 83, 99]) + opt(53, bytes([mtype]))
    for o in opts:
        body += o
    return hdr + body + b"\xff"


UDHCPC = [
    opt(61, b"\x01" + MAC),
    opt(57, struct.pack("!H", 576)),
    opt(55, bytes([1, 3, 6, 12, 15, 28, 42, 51, 54, 58, 59, 119, 121])),
    opt(60, b"udhcp 1.36.1"),
    opt(12, b"client1"),
]
SID = opt(54, ip("10.77.0.1"))
write("dhcp", "udhcpc-discover", dhcp(1, UDHCPC))
write("dhcp", "udhcpc-request", dhcp(3, UDHCPC + [opt(50, ip("10.77.0.100")), SID]))
write("dhcp", "udhcpc-renew", dhcp(3, UDHCPC, ciaddr="10.77.0.100"))
write("dhcp", "init-reboot", dhcp(3, UDHCPC + [opt(50, ip("10.77.0.102"))]))
write("dhcp", "release", dhcp(7, [SID], ciaddr="10.77.0.100"))
write("dhcp", "decline", dhcp(4, [opt(50, ip("10.77.0.100")), SID]))
write("dhcp", "inform", dhcp(8, [opt(55, bytes([1, 3, 6, 15]))], ciaddr="10.77.0.50"))
write(
    "dhcp",
    "dhclient-discover-fqdn",
    dhcp(1, [opt(81, b"\x01\x00\x00host.lab.test"), opt(55, bytes([1, 28, 2, 3, 15, 6, 119, 12]))]),
)
agent = opt(82, opt(1, b"eth0:vlan7") + opt(2, MAC))
write("dhcp", "relay-discover", dhcp(1, UDHCPC + [agent], giaddr="10.99.0.1", hops=1))
write(
    "dhcp",
    "relay-request",
    dhcp(3, UDHCPC + [opt(50, ip("10.99.0.10")), SID, agent], giaddr="10.99.0.1", hops=1),
)
PXE = [
    opt(93, b"\x00\x07"),
    opt(94, b"\x01\x03\x10"),
    opt(97, b"\x00" + bytes(range(16))),
    opt(60, b"PXEClient:Arch:00007:UNDI:003016"),
    opt(55, bytes([1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135])),
    opt(77, b"iPXE"),
]
write("dhcp", "pxe-discover", dhcp(1, PXE, flags=0x8000))
# RFC 3396: one long option sent in pieces (a 300-byte option 43, a split
# hostname), which the decoder joins before reading.
write(
    "dhcp",
    "split-options",
    dhcp(1, UDHCPC + [opt(43, bytes(255)), opt(43, bytes(45)), opt(12, b"spl"), opt(12, b"it")]),
)

# ---- DNS (RFC 1035, EDNS RFC 6891) ----
def qname(n):
    out = b""
    for label in n.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def dns(name, qtype, qid=0x1234, flags=0x0120, edns=True, cookie=True, opcode=0):
    flags |= opcode << 11
    arcount = 1 if edns else 0
    m = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, arcount) + qname(name) + struct.pack("!HH", qtype, 1)
    if edns:
        rdata = b""
        if cookie:
            rdata = struct.pack("!HH", 10, 8) + bytes.fromhex("6b0a6f2d2d1d3c01")
        m += b"\x00" + struct.pack("!HHIH", 41, 1232, 0, len(rdata)) + rdata
    return m


A, NS, CNAME, SOA, MX, TXT, AAAA, SRV, AXFR, ANY = 1, 2, 5, 6, 15, 16, 28, 33, 252, 255
write("dns", "dig-www-a", dns("www.lab.test", A))
write("dns", "dig-web-aaaa", dns("web.lab.test", AAAA))
write("dns", "dig-mx", dns("lab.test", MX))
write("dns", "dig-soa", dns("lab.test", SOA))
write("dns", "dig-srv", dns("_sip._tcp.lab.test", SRV))
write("dns", "dig-wild", dns("foo.wild.lab.test", A))
write("dns", "dig-nx", dns("nope.lab.test", A))
write("dns", "dig-refused", dns("example.org", A))
write("dns", "dig-deleg", dns("host.sub.lab.test", A))
write("dns", "dig-loop", dns("loop1.lab.test", A))
write("dns", "big-txt-noedns", dns("big.lab.test", TXT, edns=False))
write("dns", "fast-path-plain", dns("WeB.lab.test", A, qid=0, flags=0, edns=False))
write("dns", "dig-axfr", dns("lab.test", AXFR, edns=False))
write("dns", "dig-any", dns("lab.test", ANY))
write("dns", "notify", dns("lab.test", SOA, flags=0x0400, edns=False, opcode=4))

# ---- TFTP (RFC 1350, 2347-2349, 7440) ----
# Input layout: see fuzz_targets/tftp.rs.
def tftp_req(write_, name, mode, opts):
    m = struct.pack("!H", 2 if write_ else 1) + name.encode() + b"\0" + mode.encode() + b"\0"
    for k, v in opts:
        m += k.encode() + b"\0" + v.encode() + b"\0"
    return m


def ack(n):
    return struct.pack("!HH", 4, n)


def data(n, payload):
    return struct.pack("!HH", 3, n) + payload


def error(code, msg):
    return struct.pack("!HH", 5, code) + msg.encode() + b"\0"


def pkt(p):
    return b"\x00" + struct.pack("!H", len(p)) + p


TIMEOUT = b"\x01"  # at the deadline


def tftp(size, limits, req, events):
    return struct.pack("!HB", size, limits) + struct.pack("!H", len(req)) + req + b"".join(events)


# limits byte 72: max_blksize 1468, max_windowsize 16, retries 3.
write(
    "tftp",
    "rrq-window",
    tftp(5000, 72, tftp_req(False, "pxelinux.0", "octet", [("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")]),
         [pkt(ack(0)), pkt(ack(2)), TIMEOUT, pkt(ack(4))]),
)
write(
    "tftp",
    "rrq-plain-netascii",
    tftp(1200, 72, tftp_req(False, "boot.txt", "netascii", []),
         [pkt(ack(1)), TIMEOUT, pkt(ack(1)), pkt(ack(2)), pkt(ack(3))]),
)
write(
    "tftp",
    "wrq-octet",
    tftp(0, 72, tftp_req(True, "upload.bin", "octet", [("blksize", "512"), ("tsize", "1000")]),
         [pkt(data(1, bytes(512))), pkt(data(1, bytes(512))), pkt(data(2, bytes(488)))]),
)
write(
    "tftp",
    "edk2-size-probe",
    tftp(65000, 72, tftp_req(False, "bootx64.efi", "octet", [("blksize", "1468"), ("tsize", "0")]),
         [pkt(error(0, "abort"))]),
)
write(
    "tftp",
    "rrq-slow-client",
    tftp(3000, 72, tftp_req(False, "pxelinux.0", "octet", [("timeout", "255"), ("blksize", "512")]),
         [pkt(ack(0)), TIMEOUT, pkt(ack(1)), TIMEOUT, TIMEOUT, TIMEOUT, TIMEOUT, TIMEOUT]),
)
write("tftp", "bad-request-ack", tftp(10, 0, ack(1), []))
