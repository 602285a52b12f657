-- The mail outbox (issue 16): a mail is written in the transaction of the
-- change it reports and sent after the commit, so a bulk import of 10,000
-- accounts never holds the write lock while mails go out, and a crash
-- between the commit and the send loses no mail (the next sender sends it).
-- next_try is also the lease of a sender that claimed the mail: a claim
-- moves it into the future, and a sender that dies leaves a mail that is
-- due again when the lease ends. The body is erased once the mail is sent:
-- it may hold a temporary password.

-- +goose Up
CREATE TABLE mail_outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: it names the mail (Message-ID)
    account    TEXT NOT NULL REFERENCES accounts (id_key),
    account_id TEXT NOT NULL,                     -- the ID as registered
    kind       TEXT NOT NULL,
    mail_to    TEXT NOT NULL DEFAULT '',
    subject    TEXT NOT NULL DEFAULT '',
    body       TEXT NOT NULL DEFAULT '',
    created    INTEGER NOT NULL,
    next_try   INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    sent       INTEGER                            -- NULL until sent
) STRICT;
CREATE INDEX mail_outbox_due ON mail_outbox (next_try, id) WHERE sent IS NULL;
CREATE INDEX mail_outbox_account ON mail_outbox (account, id);

-- +goose Down
DROP TABLE mail_outbox;
