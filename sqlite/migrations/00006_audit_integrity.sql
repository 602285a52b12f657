-- Audit integrity (SPEC.md "Accounts"): new records hash every stored
-- column (hash version 2) from the sequence number recorded in
-- audit_meta on; the records before it keep version 1 (re-hashing them
-- would bless whatever they hold now). The database refuses to change or
-- remove audit records, the recorded start and the signed checkpoints.

-- +goose Up
ALTER TABLE audit ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 1;

CREATE TABLE audit_meta (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    v2_from INTEGER NOT NULL
) STRICT;
INSERT INTO audit_meta (id, v2_from) SELECT 1, COALESCE(MAX(seq), 0) + 1 FROM audit;

CREATE TABLE audit_checkpoints (
    seq        INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL,
    time       TEXT NOT NULL,               -- RFC 3339 as signed
    public_key TEXT NOT NULL,               -- base64
    signature  TEXT NOT NULL                -- base64
) STRICT;

-- +goose StatementBegin
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records cannot be changed'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records cannot be removed'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_meta_no_update BEFORE UPDATE ON audit_meta
BEGIN SELECT RAISE(ABORT, 'the audit log''s hash versions cannot be changed'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_meta_no_delete BEFORE DELETE ON audit_meta
BEGIN SELECT RAISE(ABORT, 'the audit log''s hash versions cannot be changed'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints cannot be changed'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints cannot be removed'); END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER audit_checkpoints_no_delete;
DROP TRIGGER audit_checkpoints_no_update;
DROP TRIGGER audit_meta_no_delete;
DROP TRIGGER audit_meta_no_update;
DROP TRIGGER audit_no_delete;
DROP TRIGGER audit_no_update;
DROP TABLE audit_checkpoints;
DROP TABLE audit_meta;
ALTER TABLE audit DROP COLUMN hash_version;
