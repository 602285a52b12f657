-- The first schema of certportal on PostgreSQL: the shape of the sqlite
-- store's, in PostgreSQL types. Times are timestamptz (microseconds, the
-- precision both stores keep); NULL stands for the zero time ("never",
-- "not revoked"). Text that is compared or sorted byte-wise (IDs, serials)
-- uses the "C" collation, so order does not depend on the server's locale
-- and matches the sqlite store and Go's string order.

-- +goose Up
CREATE TABLE accounts (
    id_key           text COLLATE "C" PRIMARY KEY, -- lower-case ID: IDs are unique case-insensitively
    id               text NOT NULL,                -- the ID as registered
    email            text NOT NULL,
    password_hash    text NOT NULL,
    password_expires timestamptz,
    method           text NOT NULL,
    status           text NOT NULL,
    created          timestamptz,
    updated          timestamptz
);

CREATE TABLE certificates (
    serial     text COLLATE "C" PRIMARY KEY,       -- even-length upper-case hex
    account    text COLLATE "C" NOT NULL REFERENCES accounts (id_key),
    issuer     text NOT NULL,
    not_before timestamptz,
    not_after  timestamptz,
    thumbprint text NOT NULL,
    sha256     text NOT NULL,
    der        bytea NOT NULL,
    issued     timestamptz,
    revoked    timestamptz,                        -- NULL while valid
    reason     integer NOT NULL DEFAULT -1
);
-- A presented certificate finds its account by this, on every request.
CREATE UNIQUE INDEX certificates_sha256 ON certificates (sha256);
-- A safety net under portal's rule "one valid certificate per account"
-- (portal revokes the previous one in the same transaction): two replicas
-- that both skipped the revocation cannot both commit.
CREATE UNIQUE INDEX certificates_one_valid ON certificates (account) WHERE revoked IS NULL;
CREATE INDEX certificates_account ON certificates (account, issued);
-- CRLs read the revoked certificates of one issuer in serial order: a
-- partial index holds only revoked rows, already sorted, and covers the
-- query (index-only scans), so a large CRL never reads the DER.
CREATE INDEX certificates_revoked ON certificates (issuer, serial) INCLUDE (not_after, revoked, reason)
    WHERE revoked IS NOT NULL;

CREATE TABLE sessions (
    id          text PRIMARY KEY,                  -- SHA-256 of the cookie token
    account     text COLLATE "C" NOT NULL REFERENCES accounts (id_key),
    cert_serial text NOT NULL DEFAULT '',
    remote      text NOT NULL DEFAULT '',
    created     timestamptz,
    last_seen   timestamptz,
    expires     timestamptz
);
CREATE INDEX sessions_account ON sessions (account);
CREATE INDEX sessions_expires ON sessions (expires);

-- Failures and lockouts are kept for unknown IDs too (they cost the same),
-- so they do not reference accounts.
CREATE TABLE failures (
    account_key text COLLATE "C" NOT NULL,
    remote      text NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX failures_key ON failures (account_key, remote, at);

CREATE TABLE lockouts (
    account_key text COLLATE "C" NOT NULL,
    remote      text NOT NULL,
    until       timestamptz NOT NULL,
    PRIMARY KEY (account_key, remote)
);

CREATE TABLE tickets (
    id      text PRIMARY KEY,                      -- SHA-256 of the form token
    account text COLLATE "C" NOT NULL REFERENCES accounts (id_key),
    expires timestamptz
);

CREATE TABLE audit (
    seq         bigint PRIMARY KEY,                -- 1, 2, 3, ... without gaps
    time        timestamptz NOT NULL,
    actor       text NOT NULL,
    account_id  text NOT NULL,                     -- as given: it is hashed
    account_key text COLLATE "C" NOT NULL,
    action      text NOT NULL,
    detail      text NOT NULL,
    remote      text NOT NULL,
    prev_hash   text NOT NULL,
    hash        text NOT NULL
);
CREATE INDEX audit_account ON audit (account_key, seq);
CREATE INDEX audit_action ON audit (account_key, action, time);

-- The head of the audit chain: one row, locked by every append until its
-- transaction ends, so appends from all replicas form one chain (the seq
-- primary key is the safety net under it).
CREATE TABLE audit_head (
    id   integer PRIMARY KEY CHECK (id = 1),
    seq  bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');

CREATE TABLE crl_numbers (
    issuer text PRIMARY KEY,
    last   bigint NOT NULL
);

CREATE TABLE crls (
    issuer      text NOT NULL,
    number      bigint NOT NULL,
    this_update timestamptz,
    next_update timestamptz,
    der         bytea NOT NULL,
    PRIMARY KEY (issuer, number)
);

-- +goose Down
DROP TABLE crls;
DROP TABLE crl_numbers;
DROP TABLE audit_head;
DROP TABLE audit;
DROP TABLE tickets;
DROP TABLE lockouts;
DROP TABLE failures;
DROP TABLE sessions;
DROP TABLE certificates;
DROP TABLE accounts;
