-- Authoritative zones and their records (labnet-dnsd, labnetctl zones/records).

-- One row per zone. `serial` is the zone's SOA serial: every write to the
-- zone moves it (RFC 1982 arithmetic), whatever the SOA row's RDATA says.
CREATE TABLE zones (
    id     INTEGER PRIMARY KEY,
    name   TEXT NOT NULL UNIQUE,       -- lowercase, absolute, with the final dot
    serial INTEGER NOT NULL            -- 0 ..= 2^32-1
);

-- Resource records, one row per RR (class IN).
CREATE TABLE records (
    id      INTEGER PRIMARY KEY,
    zone_id INTEGER NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    name    TEXT NOT NULL,             -- absolute owner name with the final dot, case as written
    rtype   TEXT NOT NULL,             -- mnemonic: A, AAAA, MX, ...
    ttl     INTEGER NOT NULL,
    rdata   TEXT NOT NULL,             -- presentation form, for people
    wire    BLOB NOT NULL              -- RFC 1035 wire form, names uncompressed: what dnsd serves
);
CREATE INDEX records_zone ON records (zone_id);
CREATE INDEX records_name ON records (lower(name));

INSERT INTO generations (topic) VALUES ('zones');
