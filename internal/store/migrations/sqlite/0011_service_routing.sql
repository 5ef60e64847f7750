-- Per-Service routing settings: the request-body limit in MiB the router
-- enforces (413 beyond it) and whether HTTPS responses carry
-- Strict-Transport-Security. Existing Services get the defaults.
ALTER TABLE services ADD COLUMN max_body_mb INTEGER NOT NULL DEFAULT 100;
ALTER TABLE services ADD COLUMN hsts BOOLEAN NOT NULL DEFAULT FALSE;
