-- The first schema of certportal. Times are integer Unix microseconds (UTC),
-- the precision PostgreSQL keeps too, so both stores round-trip the same
-- values; NULL stands for the zero time ("never", "not revoked").

-- +goose Up
CREATE TABLE accounts (
    id_key           TEXT PRIMARY KEY,          -- lower-case ID: IDs are unique case-insensitively
    id               TEXT NOT NULL,             -- the ID as registered
    email            TEXT NOT NULL,
    password_hash    TEXT NOT NULL,
    password_expires INTEGER,
    method           TEXT NOT NULL,
    status           TEXT NOT NULL,
    created          INTEGER,
    updated          INTEGER
) STRICT;

CREATE TABLE certificates (
    serial     TEXT PRIMARY KEY,                -- even-length upper-case hex
    account    TEXT NOT NULL REFERENCES accounts (id_key),
    issuer     TEXT NOT NULL,
    not_before INTEGER,
    not_after  INTEGER,
    thumbprint TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    der        BLOB NOT NULL,
    issued     INTEGER,
    revoked    INTEGER,                         -- NULL while valid
    reason     INTEGER NOT NULL DEFAULT -1
) STRICT;
-- A presented certificate finds its account by this, on every request.
CREATE UNIQUE INDEX certificates_sha256 ON certificates (sha256);
-- A safety net under portal's rule "one valid certificate per account"
-- (portal revokes the previous one in the same transaction).
CREATE UNIQUE INDEX certificates_one_valid ON certificates (account) WHERE revoked IS NULL;
CREATE INDEX certificates_account ON certificates (account, issued);
-- CRLs read the revoked certificates of one issuer in serial order: a
-- partial index holds only revoked rows, already sorted, and covers the
-- query, so a CRL of a million entries never touches the table (or its DER).
CREATE INDEX certificates_revoked ON certificates (issuer, serial, not_after, revoked, reason)
    WHERE revoked IS NOT NULL;

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,               -- SHA-256 of the cookie token
    account     TEXT NOT NULL REFERENCES accounts (id_key),
    cert_serial TEXT NOT NULL DEFAULT '',
    remote      TEXT NOT NULL DEFAULT '',
    created     INTEGER,
    last_seen   INTEGER,
    expires     INTEGER
) STRICT;
CREATE INDEX sessions_account ON sessions (account);
CREATE INDEX sessions_expires ON sessions (expires);

-- Failures and lockouts are kept for unknown IDs too (they cost the same),
-- so they do not reference accounts.
CREATE TABLE failures (
    account_key TEXT NOT NULL,
    remote      TEXT NOT NULL,
    at          INTEGER NOT NULL
) STRICT;
CREATE INDEX failures_key ON failures (account_key, remote, at);

CREATE TABLE lockouts (
    account_key TEXT NOT NULL,
    remote      TEXT NOT NULL,
    until       INTEGER NOT NULL,
    PRIMARY KEY (account_key, remote)
) STRICT;

CREATE TABLE tickets (
    id      TEXT PRIMARY KEY,                   -- SHA-256 of the form token
    account TEXT NOT NULL REFERENCES accounts (id_key),
    expires INTEGER
) STRICT;

CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY,            -- 1, 2, 3, ... without gaps
    time        INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    account_id  TEXT NOT NULL,                  -- as given: it is hashed
    account_key TEXT NOT NULL,
    action      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    remote      TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
) STRICT;
CREATE INDEX audit_account ON audit (account_key, seq);
CREATE INDEX audit_action ON audit (account_key, action, time);

CREATE TABLE crl_numbers (
    issuer TEXT PRIMARY KEY,
    last   INTEGER NOT NULL
) STRICT;

CREATE TABLE crls (
    issuer      TEXT NOT NULL,
    number      INTEGER NOT NULL,
    this_update INTEGER,
    next_update INTEGER,
    der         BLOB NOT NULL,
    PRIMARY KEY (issuer, number)
) STRICT;

-- +goose Down
DROP TABLE crls;
DROP TABLE crl_numbers;
DROP TABLE audit;
DROP TABLE tickets;
DROP TABLE lockouts;
DROP TABLE failures;
DROP TABLE sessions;
DROP TABLE certificates;
DROP TABLE accounts;
