-- Addresses as integers (the IPv4 address as an unsigned 32-bit number), so
-- that they sort and range in address order; dotted-quad text sorted
-- 10.0.0.10 before 10.0.0.9. Existing rows are converted in place.

CREATE TABLE leases_new (
    ip        INTEGER PRIMARY KEY NOT NULL CHECK (ip BETWEEN 0 AND 4294967295),
    mac       TEXT NOT NULL,
    client_id BLOB,
    hostname  TEXT,
    state     TEXT NOT NULL CHECK (state IN ('bound', 'released', 'expired', 'declined')),
    starts    INTEGER NOT NULL,
    expires   INTEGER NOT NULL
);

CREATE TABLE reservations_new (
    id        INTEGER PRIMARY KEY,
    mac       TEXT UNIQUE,
    client_id BLOB UNIQUE,
    ip        INTEGER NOT NULL UNIQUE CHECK (ip BETWEEN 0 AND 4294967295),
    hostname  TEXT,
    profile   TEXT,
    CHECK (mac IS NOT NULL OR client_id IS NOT NULL)
);

-- 'a.b.c.d' -> a*2^24 + b*2^16 + c*2^8 + d, one dot at a time.
CREATE TEMP VIEW old_lease_ips AS
WITH d1 AS (
    SELECT rowid AS rid,
           CAST(substr(ip, 1, instr(ip, '.') - 1) AS INTEGER) AS a,
           substr(ip, instr(ip, '.') + 1) AS rest
    FROM leases
), d2 AS (
    SELECT rid, a,
           CAST(substr(rest, 1, instr(rest, '.') - 1) AS INTEGER) AS b,
           substr(rest, instr(rest, '.') + 1) AS rest
    FROM d1
)
SELECT rid,
       (a << 24) | (b << 16)
       | (CAST(substr(rest, 1, instr(rest, '.') - 1) AS INTEGER) << 8)
       | CAST(substr(rest, instr(rest, '.') + 1) AS INTEGER) AS num
FROM d2;

CREATE TEMP VIEW old_reservation_ips AS
WITH d1 AS (
    SELECT id AS rid,
           CAST(substr(ip, 1, instr(ip, '.') - 1) AS INTEGER) AS a,
           substr(ip, instr(ip, '.') + 1) AS rest
    FROM reservations
), d2 AS (
    SELECT rid, a,
           CAST(substr(rest, 1, instr(rest, '.') - 1) AS INTEGER) AS b,
           substr(rest, instr(rest, '.') + 1) AS rest
    FROM d1
)
SELECT rid,
       (a << 24) | (b << 16)
       | (CAST(substr(rest, 1, instr(rest, '.') - 1) AS INTEGER) << 8)
       | CAST(substr(rest, instr(rest, '.') + 1) AS INTEGER) AS num
FROM d2;

INSERT INTO leases_new (ip, mac, client_id, hostname, state, starts, expires)
SELECT o.num, l.mac, l.client_id, l.hostname, l.state, l.starts, l.expires
FROM leases l JOIN old_lease_ips o ON o.rid = l.rowid;

INSERT INTO reservations_new (id, mac, client_id, ip, hostname, profile)
SELECT r.id, r.mac, r.client_id, o.num, r.hostname, r.profile
FROM reservations r JOIN old_reservation_ips o ON o.rid = r.id;

DROP VIEW old_lease_ips;
DROP VIEW old_reservation_ips;
DROP TABLE leases;
DROP TABLE reservations;
ALTER TABLE leases_new RENAME TO leases;
ALTER TABLE reservations_new RENAME TO reservations;
