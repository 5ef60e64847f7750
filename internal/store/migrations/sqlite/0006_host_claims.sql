-- Host claims: every host name the router answers for is held by exactly
-- one Service (or, later, one preview of it) across all organisations.
-- Generated hosts carry the organisation's host label, so two
-- organisations with the same application, environment and service
-- names get different hosts by construction; custom domains move here
-- from service_domains.
ALTER TABLE organisations ADD COLUMN host_label TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX organisations_host_label ON organisations (host_label) WHERE host_label <> '';

CREATE TABLE host_claims (
    host        TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    service_id  TEXT NOT NULL,
    preview_id  TEXT NOT NULL DEFAULT '',
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'active',
    created_at  INTEGER NOT NULL,
    FOREIGN KEY (service_id, org_id) REFERENCES services (id, org_id) ON DELETE CASCADE
);
CREATE INDEX host_claims_service ON host_claims (org_id, service_id);

INSERT INTO host_claims (host, org_id, service_id, kind, state, created_at)
    SELECT host, org_id, service_id, 'custom', 'active', 0 FROM service_domains;
DROP TABLE service_domains;

-- Services that existed before host claims keep the host they answered at
-- (the previous scheme, without the organisation label): the first start
-- after the upgrade claims it for them, oldest first, and sets this flag.
ALTER TABLE services ADD COLUMN hosts_claimed BOOLEAN NOT NULL DEFAULT FALSE;
