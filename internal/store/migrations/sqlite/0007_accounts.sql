-- Installation administrators: a role above organisations, held by the
-- first-start administrator; only they (or the operator) may change
-- installation settings.
ALTER TABLE users ADD COLUMN installation_admin BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE users SET installation_admin = TRUE
WHERE id = (SELECT id FROM users ORDER BY created_at, id LIMIT 1);

-- Failed sign-ins per key ("account:<email>" or "address:<ip>"), shared by
-- every replica, so a limit holds however requests are balanced.
CREATE TABLE sign_in_failures (
    throttle_key     TEXT PRIMARY KEY,
    failures         BIGINT NOT NULL,
    last_failure_at  INTEGER NOT NULL
);

-- An existing user added to another organisation is invited; nothing is
-- attached until they accept.
CREATE TABLE invitations (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id     TEXT NOT NULL,
    invited_by  TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    UNIQUE (org_id, user_id),
    FOREIGN KEY (role_id, org_id) REFERENCES roles (id, org_id) ON DELETE CASCADE
);
CREATE INDEX invitations_user ON invitations (user_id);

-- An OAuth refresh is claimed in the database before the provider is
-- called, so of several replicas exactly one spends the refresh token.
ALTER TABLE integrations ADD COLUMN refresh_claim TEXT NOT NULL DEFAULT '';
ALTER TABLE integrations ADD COLUMN refresh_claim_until INTEGER;
