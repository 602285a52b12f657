-- Expiry reminders (issue 9): one row per certificate and threshold (30, 7,
-- 1 days before notAfter, as configured) once its mail has gone out. The
-- key is what makes a reminder go out once: the row is inserted in the
-- transaction that sends the mail and audits it, so a failed send rolls it
-- back (and the next run tries again), and a second claim finds the row.

-- +goose Up
CREATE TABLE reminders (
    serial TEXT NOT NULL REFERENCES certificates (serial),
    days   INTEGER NOT NULL,
    sent   INTEGER NOT NULL,                    -- Unix microseconds
    PRIMARY KEY (serial, days)
) STRICT;
-- The reminder run reads the valid certificates that expire soon, hourly;
-- a partial index on notAfter keeps that from reading every certificate.
CREATE INDEX certificates_expiring ON certificates (not_after) WHERE revoked IS NULL;

-- +goose Down
DROP INDEX certificates_expiring;
DROP TABLE reminders;
