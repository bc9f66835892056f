-- Leases and reservations (labnet-dhcpd), and the change counters every
-- daemon polls to notice what another process wrote.

CREATE TABLE leases (
    ip        TEXT PRIMARY KEY NOT NULL,   -- dotted quad
    mac       TEXT NOT NULL,               -- chaddr, aa:bb:cc:dd:ee:ff
    client_id BLOB,                        -- option 61, when the client sent one
    hostname  TEXT,                        -- option 12 or 81, sanitised
    state     TEXT NOT NULL CHECK (state IN ('bound', 'released', 'expired', 'declined')),
    starts    INTEGER NOT NULL,            -- unix seconds
    expires   INTEGER NOT NULL             -- unix seconds; for 'declined': end of probation
);
-- No secondary indexes: readers load whole tables (dhcpd at start, dnsd on
-- change), and every index is more pages written per lease batch.

CREATE TABLE reservations (
    id        INTEGER PRIMARY KEY,
    mac       TEXT UNIQUE,                 -- one of mac / client_id is set
    client_id BLOB UNIQUE,
    ip        TEXT NOT NULL UNIQUE,
    hostname  TEXT,
    profile   TEXT,                        -- boot profile name (labnet-pxe)
    CHECK (mac IS NOT NULL OR client_id IS NOT NULL)
);

-- One counter per kind of data; a writer bumps it in the transaction that
-- changes the data, readers poll it and reload when it moves.
CREATE TABLE generations (
    topic TEXT PRIMARY KEY NOT NULL,
    gen   INTEGER NOT NULL DEFAULT 0
);
INSERT INTO generations (topic) VALUES ('leases'), ('lease_admin'), ('reservations');
