-- The mail outbox (issue 16): a mail is written in the transaction of the
-- change it reports and sent after the commit, so a bulk import never
-- holds locks while mails go out, and a crash between the commit and the
-- send loses no mail (the next sender, on any replica, sends it). next_try
-- is also the lease of a sender that claimed the mail (FOR UPDATE SKIP
-- LOCKED keeps two replicas from claiming one mail); a sender that dies
-- leaves a mail that is due again when the lease ends. The body is erased
-- once the mail is sent: it may hold a temporary password.

-- +goose Up
CREATE TABLE mail_outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- names the mail (Message-ID)
    account    text COLLATE "C" NOT NULL REFERENCES accounts (id_key),
    account_id text NOT NULL,                                   -- the ID as registered
    kind       text NOT NULL,
    mail_to    text NOT NULL DEFAULT '',
    subject    text NOT NULL DEFAULT '',
    body       text NOT NULL DEFAULT '',
    created    timestamptz NOT NULL,
    next_try   timestamptz NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    last_error text NOT NULL DEFAULT '',
    sent       timestamptz                                      -- NULL until sent
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_try, id) WHERE sent IS NULL;
CREATE INDEX mail_outbox_account ON mail_outbox (account, id);

-- +goose Down
DROP TABLE mail_outbox;
