-- A consent flow (OAuth, GitHub App creation and installation) completes
-- only in the browser that began it: the hash of a one-time nonce cookie set
-- when the starting user opened the flow's Slipway link. pending_ciphertext
-- holds what a callback obtained (sealed) until the user confirms it.
ALTER TABLE oauth_states ADD COLUMN nonce_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_states ADD COLUMN pending_ciphertext BYTEA;
