-- A state store as plugin version 1 wrote it (schema version 1, user_version 0).
-- Frozen: never edit; migrations must carry exactly this forward.
CREATE TABLE pools (
    id            TEXT PRIMARY KEY,
    address_space TEXT NOT NULL,
    family        INTEGER NOT NULL,
    cidr          TEXT NOT NULL,
    subpool       TEXT NOT NULL,
    first         BLOB NOT NULL,
    last          BLOB NOT NULL,
    request_key   TEXT NOT NULL UNIQUE,
    holders       INTEGER NOT NULL CHECK (holders > 0),
    cursor        BLOB
);
CREATE INDEX pools_by_range ON pools (address_space, family, first);
CREATE TABLE addresses (
    pool_id TEXT NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    addr    BLOB NOT NULL,
    kind    TEXT NOT NULL,
    PRIMARY KEY (pool_id, addr)
) WITHOUT ROWID;
CREATE TABLE networks (
    id      TEXT PRIMARY KEY,
    options TEXT NOT NULL,
    gateway  TEXT,
    gateway6 TEXT
);
CREATE TABLE network_ports (
    network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    pf         TEXT NOT NULL,
    vlan       INTEGER NOT NULL,
    PRIMARY KEY (pf, vlan)
);
CREATE TABLE endpoints (
    id         TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES networks (id),
    pf         TEXT NOT NULL,
    vf         INTEGER NOT NULL,
    pci        TEXT NOT NULL,
    netdev     TEXT NOT NULL,
    mac        TEXT NOT NULL,
    address    TEXT NOT NULL,
    address6   TEXT NOT NULL,
    original   TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('programming', 'ready')),
    UNIQUE (pf, vf)
);

-- A /24 pool with its gateway and one container's address, one network on PF pf0 VLAN 100,
-- and one endpoint holding VF 2 of pf0.
INSERT INTO pools VALUES ('local/10.1.0.0/24#0a0b0c0d', 'local', 4, '10.1.0.0/24', '',
    X'0000000000000000000000000a010000', X'0000000000000000000000000a0100ff',
    '["local", "10.1.0.0/24", ""]', 1, X'0000000000000000000000000a010003');
INSERT INTO addresses VALUES ('local/10.1.0.0/24#0a0b0c0d', X'0000000000000000000000000a010001', 'gateway');
INSERT INTO addresses VALUES ('local/10.1.0.0/24#0a0b0c0d', X'0000000000000000000000000a010002', 'dynamic');
INSERT INTO networks VALUES ('net-v1', '{"pfs": ["pf0"], "vlan": 100, "mtu": 1500}', '10.1.0.1', NULL);
INSERT INTO network_ports VALUES ('net-v1', 'pf0', 100);
INSERT INTO endpoints VALUES ('ep-v1', 'net-v1', 'pf0', 2, '0000:3b:02.2', 'pf0v2',
    '02:00:00:00:00:02', '10.1.0.2/24', '',
    '{"mac": "00:00:00:00:00:00", "vlan": 0, "qos": 0, "proto": "802.1Q", "spoofchk": null, "trust": null, "link_state": null, "min_tx_rate": null, "max_tx_rate": null, "mtu": null}',
    'ready');
