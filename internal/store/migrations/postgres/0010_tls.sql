-- TLS certificates, ACME accounts and their keys live in the database so
-- every replica serves the certificates any of them obtained. Values are
-- sealed with the master keyring before they reach this table.
CREATE TABLE tls_storage (
    key         TEXT PRIMARY KEY,
    value       BYTEA NOT NULL,
    modified_at TIMESTAMPTZ NOT NULL
);
-- One row per held lock: an ACME order for a name runs under its lock, so
-- replicas obtain each certificate once. A lock whose holder stopped
-- renewing it expires and may be taken over.
CREATE TABLE tls_locks (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
-- What the dashboard, the CLI and the metrics say about each name's
-- certificate: issued, renewing or failed, and why.
CREATE TABLE tls_certificates (
    host       TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    not_after  TIMESTAMPTZ,
    last_error TEXT NOT NULL DEFAULT '',
    updated_at TIMESTAMPTZ NOT NULL
);
