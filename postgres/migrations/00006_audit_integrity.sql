-- Audit integrity (SPEC.md "Accounts"): new records hash every stored
-- column (hash version 2) from the sequence number recorded in
-- audit_meta on; the records before it keep version 1 (re-hashing them
-- would bless whatever they hold now). The database refuses to change or
-- remove audit records, the recorded start and the signed checkpoints.

-- +goose Up
ALTER TABLE audit ADD COLUMN hash_version smallint NOT NULL DEFAULT 1;

CREATE TABLE audit_meta (
    id      integer PRIMARY KEY CHECK (id = 1),
    v2_from bigint NOT NULL
);
INSERT INTO audit_meta (id, v2_from) SELECT 1, COALESCE(MAX(seq), 0) + 1 FROM audit;

CREATE TABLE audit_checkpoints (
    seq        bigint PRIMARY KEY,
    hash       text NOT NULL,
    time       text NOT NULL,                  -- RFC 3339 as signed
    public_key text NOT NULL,                  -- base64
    signature  text NOT NULL                   -- base64
);

-- +goose StatementBegin
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_meta_append_only BEFORE UPDATE OR DELETE ON audit_meta
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_meta_no_truncate BEFORE TRUNCATE ON audit_meta
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- +goose Down
DROP TRIGGER audit_checkpoints_no_truncate ON audit_checkpoints;
DROP TRIGGER audit_checkpoints_append_only ON audit_checkpoints;
DROP TRIGGER audit_meta_no_truncate ON audit_meta;
DROP TRIGGER audit_meta_append_only ON audit_meta;
DROP TRIGGER audit_no_truncate ON audit;
DROP TRIGGER audit_append_only ON audit;
DROP FUNCTION audit_append_only();
DROP TABLE audit_checkpoints;
DROP TABLE audit_meta;
ALTER TABLE audit DROP COLUMN hash_version;
