-- Expiry reminders (issue 9): one row per certificate and threshold (30, 7,
-- 1 days before notAfter, as configured) once its mail has gone out. The
-- key is what makes a reminder go out once across replicas: the row is
-- inserted in the transaction that sends the mail and audits it; a second
-- replica's insert of the same key waits for that transaction and then
-- does nothing (or, if it rolled back after a failed send, inserts it).

-- +goose Up
CREATE TABLE reminders (
    serial text COLLATE "C" NOT NULL REFERENCES certificates (serial),
    days   integer NOT NULL,
    sent   timestamptz NOT NULL,
    PRIMARY KEY (serial, days)
);
-- The reminder run reads the valid certificates that expire soon, hourly;
-- a partial index on notAfter keeps that from reading every certificate.
CREATE INDEX certificates_expiring ON certificates (not_after) WHERE revoked IS NULL;

-- +goose Down
DROP INDEX certificates_expiring;
DROP TABLE reminders;
