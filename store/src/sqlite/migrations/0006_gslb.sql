-- GSLB (labnet-dnsd): prefix maps, regions, pools, members, health.
-- Prefixes and addresses are text in their canonical form (IPv4 or IPv6):
-- dnsd loads the maps whole into a prefix trie, the store never searches
-- them.

CREATE TABLE gslb_isp_map (
    cidr TEXT PRIMARY KEY NOT NULL,    -- host bits clear, e.g. 1.0.1.0/24
    isp  TEXT NOT NULL                 -- a DNS label: level 1 answers abc.<isp>.gslb...
);
CREATE INDEX gslb_isp_map_isp ON gslb_isp_map (isp);

CREATE TABLE gslb_regions (
    id   INTEGER PRIMARY KEY,          -- order of addition
    name TEXT NOT NULL UNIQUE,
    lat  REAL NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon  REAL NOT NULL CHECK (lon BETWEEN -180 AND 180)
);

CREATE TABLE gslb_region_map (
    cidr   TEXT PRIMARY KEY NOT NULL,
    region TEXT NOT NULL REFERENCES gslb_regions (name) ON DELETE CASCADE
);
CREATE INDEX gslb_region_map_region ON gslb_region_map (region);

CREATE TABLE gslb_pools (
    name          TEXT PRIMARY KEY NOT NULL,  -- lowercase, absolute
    answers       INTEGER NOT NULL CHECK (answers >= 1),
    ttl           INTEGER NOT NULL CHECK (ttl >= 0),
    when_all_down TEXT NOT NULL CHECK (when_all_down IN ('any', 'none'))
);

CREATE TABLE gslb_members (
    id     INTEGER PRIMARY KEY,        -- order of addition
    pool   TEXT NOT NULL REFERENCES gslb_pools (name) ON DELETE CASCADE,
    ip     TEXT NOT NULL,
    isp    TEXT NOT NULL,
    region TEXT NOT NULL REFERENCES gslb_regions (name),
    weight INTEGER NOT NULL CHECK (weight >= 1),
    check_spec TEXT,                   -- tcp:PORT | http:PORT/PATH
    UNIQUE (pool, ip)
);

-- What each dnsd node last saw of each checked member.
CREATE TABLE gslb_health (
    ip         TEXT NOT NULL,
    check_spec TEXT NOT NULL,
    node       TEXT NOT NULL,
    up         INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (ip, check_spec, node)
);

INSERT INTO generations (topic) VALUES ('gslb');
