-- Roles and the admin console (issue 16). Every account has a role; the
-- existing ones are users. Two indexes serve the console: the staff (the
-- few accounts whose role is not user) by ID, and the search by e-mail
-- prefix, a range on lower(email) read in order (ties by ID), so a page of
-- results reads what it shows even with 100,000 accounts. The search by ID
-- prefix is a range on the primary key.

-- +goose Up
ALTER TABLE accounts ADD COLUMN role TEXT NOT NULL DEFAULT 'user'
    CHECK (role IN ('user', 'helpdesk', 'admin'));
CREATE INDEX accounts_staff ON accounts (id_key) WHERE role <> 'user';
CREATE INDEX accounts_email ON accounts (lower(email), id_key);

-- +goose Down
DROP INDEX accounts_email;
DROP INDEX accounts_staff;
ALTER TABLE accounts DROP COLUMN role;
