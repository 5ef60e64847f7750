-- A custom domain waits here, pending, until its owner proves control of
-- it (a DNS TXT record carrying the token); only then does it become a
-- host claim. Pending rows are per Service and unique nowhere else, so a
-- pending domain blocks nobody.
CREATE TABLE domain_verifications (
    service_id  TEXT NOT NULL,
    org_id      TEXT NOT NULL,
    domain      TEXT NOT NULL,
    token       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    checked_at  INTEGER,
    last_error  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (service_id, domain),
    FOREIGN KEY (service_id, org_id) REFERENCES services (id, org_id) ON DELETE CASCADE
);
CREATE INDEX domain_verifications_org ON domain_verifications (org_id, service_id);
