-- CRL signing out of the revoking transaction (issue 10). crl_state counts
-- the revocations of each issuer: RevokeCertificate bumps it in the same
-- transaction that revokes, and every stored CRL records the count it
-- covers, so a CRL is served only while no revocation committed after it.
-- The count lives apart from crl_numbers on purpose: a signer holds its
-- crl_numbers row while it signs, and a revocation must not wait for that.
-- Existing CRLs cover every revocation so far (each revocation used to sign
-- one), so 0 for them beside no row (0) for the count is right.

-- +goose Up
CREATE TABLE crl_state (
    issuer      TEXT PRIMARY KEY,
    revocations INTEGER NOT NULL
) STRICT;
ALTER TABLE crls ADD COLUMN revocations INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE crls DROP COLUMN revocations;
DROP TABLE crl_state;
