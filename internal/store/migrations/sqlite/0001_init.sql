-- Slipway schema, SQLite. Times are INTEGER unix nanoseconds (UTC); JSON is TEXT so
-- both dialects read it the same way. Tables holding tenant data carry
-- org_id, and child tables reference their parent by (id, org_id) so a row
-- can never point into another organisation.

CREATE TABLE organisations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER     NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL,
    name           TEXT NOT NULL DEFAULT '',
    password_hash  TEXT NOT NULL DEFAULT '',
    created_at     INTEGER     NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (lower(email));

CREATE TABLE roles (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    built_in     BOOLEAN NOT NULL DEFAULT FALSE,
    permissions  TEXT NOT NULL DEFAULT '{}',
    created_at   INTEGER     NOT NULL,
    UNIQUE (id, org_id)
);
CREATE UNIQUE INDEX roles_name ON roles (org_id, lower(name));

CREATE TABLE memberships (
    org_id      TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id     TEXT NOT NULL,
    created_at  INTEGER     NOT NULL,
    PRIMARY KEY (org_id, user_id),
    FOREIGN KEY (role_id, org_id) REFERENCES roles (id, org_id)
);
CREATE INDEX memberships_user ON memberships (user_id);
CREATE INDEX memberships_role ON memberships (role_id);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    secret_hash   BLOB  NOT NULL UNIQUE,
    created_at    INTEGER     NOT NULL,
    last_used_at  INTEGER    ,
    expires_at    INTEGER    
);
CREATE INDEX api_tokens_org_user ON api_tokens (org_id, user_id);

CREATE TABLE sessions (
    id_hash     BLOB  PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id      TEXT NOT NULL DEFAULT '',
    csrf_token  TEXT NOT NULL,
    expires_at  INTEGER     NOT NULL,
    created_at  INTEGER     NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE integrations (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    provider           TEXT NOT NULL,
    label              TEXT NOT NULL DEFAULT '',
    auth_method        TEXT NOT NULL,
    base_url           TEXT NOT NULL DEFAULT '',
    internal_url       TEXT NOT NULL DEFAULT '',
    account_name       TEXT NOT NULL DEFAULT '',
    external_id        TEXT NOT NULL DEFAULT '',
    repo_selection     TEXT NOT NULL DEFAULT '',
    scopes             TEXT NOT NULL DEFAULT '[]',
    status             TEXT NOT NULL,
    status_reason      TEXT NOT NULL DEFAULT '',
    status_fix         TEXT NOT NULL DEFAULT '',
    settings           TEXT NOT NULL DEFAULT '{}',
    secret_ciphertext  BLOB  NOT NULL,
    bad_signatures     BIGINT NOT NULL DEFAULT 0,
    repos_etag         TEXT NOT NULL DEFAULT '',
    repos_synced_at    INTEGER    ,
    created_at         INTEGER     NOT NULL,
    updated_at         INTEGER     NOT NULL,
    checked_at         INTEGER    ,
    UNIQUE (id, org_id)
);
CREATE INDEX integrations_org ON integrations (org_id);
CREATE INDEX integrations_external ON integrations (provider, external_id);

CREATE TABLE integration_repos (
    integration_id  TEXT NOT NULL,
    org_id          TEXT NOT NULL,
    repo_id         TEXT NOT NULL,
    full_name       TEXT NOT NULL,
    default_branch  TEXT NOT NULL DEFAULT '',
    clone_url       TEXT NOT NULL DEFAULT '',
    html_url        TEXT NOT NULL DEFAULT '',
    private         BOOLEAN NOT NULL DEFAULT FALSE,
    archived        BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at      INTEGER    ,
    PRIMARY KEY (integration_id, repo_id),
    FOREIGN KEY (integration_id, org_id) REFERENCES integrations (id, org_id) ON DELETE CASCADE
);

CREATE TABLE repo_hooks (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL,
    integration_id     TEXT NOT NULL,
    repo_id            TEXT NOT NULL,
    provider_hook_id   TEXT NOT NULL DEFAULT '',
    secret_ciphertext  BLOB  NOT NULL,
    status             TEXT NOT NULL DEFAULT '',
    last_delivery_at   INTEGER    ,
    last_error         TEXT NOT NULL DEFAULT '',
    created_at         INTEGER     NOT NULL,
    UNIQUE (integration_id, repo_id),
    FOREIGN KEY (integration_id, org_id) REFERENCES integrations (id, org_id) ON DELETE CASCADE
);

CREATE TABLE deliveries (
    id                    TEXT PRIMARY KEY,
    org_id                TEXT NOT NULL,
    integration_id        TEXT NOT NULL,
    provider_delivery_id  TEXT,
    event                 TEXT NOT NULL DEFAULT '',
    headers               TEXT NOT NULL DEFAULT '{}',
    body                  BLOB  NOT NULL,
    verdict               TEXT NOT NULL,
    detail                TEXT NOT NULL DEFAULT '',
    caused                TEXT NOT NULL DEFAULT '[]',
    received_at           INTEGER     NOT NULL,
    processed_at          INTEGER    ,
    UNIQUE (integration_id, provider_delivery_id),
    FOREIGN KEY (integration_id, org_id) REFERENCES integrations (id, org_id) ON DELETE CASCADE
);
CREATE INDEX deliveries_list ON deliveries (org_id, integration_id, received_at);

CREATE TABLE oauth_states (
    state           TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL DEFAULT '',
    user_id         TEXT NOT NULL DEFAULT '',
    integration_id  TEXT NOT NULL DEFAULT '',
    purpose         TEXT NOT NULL DEFAULT '',
    verifier        TEXT NOT NULL DEFAULT '',
    redirect_to     TEXT NOT NULL DEFAULT '',
    expires_at      INTEGER     NOT NULL
);

CREATE TABLE applications (
    id                      TEXT PRIMARY KEY,
    org_id                  TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name                    TEXT NOT NULL,
    description             TEXT NOT NULL DEFAULT '',
    status                  TEXT NOT NULL,
    default_environment_id  TEXT NOT NULL DEFAULT '',
    migrated_from_project   TEXT NOT NULL DEFAULT '',
    created_at              INTEGER     NOT NULL,
    updated_at              INTEGER     NOT NULL,
    UNIQUE (id, org_id)
);
CREATE UNIQUE INDEX applications_name ON applications (org_id, lower(name));

CREATE TABLE environments (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL,
    application_id  TEXT NOT NULL,
    name            TEXT NOT NULL,
    status          TEXT NOT NULL,
    is_default      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      INTEGER     NOT NULL,
    updated_at      INTEGER     NOT NULL,
    UNIQUE (id, org_id),
    FOREIGN KEY (application_id, org_id) REFERENCES applications (id, org_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX environments_name ON environments (application_id, lower(name));
-- At most one default environment per application, enforced by the database.
CREATE UNIQUE INDEX environments_one_default ON environments (application_id) WHERE is_default;

CREATE TABLE projects (
    id                       TEXT PRIMARY KEY,
    org_id                   TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name                     TEXT NOT NULL,
    compute                  TEXT NOT NULL DEFAULT '',
    migrated_to_environment  TEXT NOT NULL DEFAULT '',
    migrated_to_application  TEXT NOT NULL DEFAULT '',
    migrated_at              INTEGER    ,
    deleted_at               INTEGER    ,
    created_at               INTEGER     NOT NULL,
    UNIQUE (id, org_id)
);

CREATE TABLE services (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    application_id      TEXT,
    environment_id      TEXT,
    project_id          TEXT,
    name                TEXT NOT NULL,
    type                TEXT NOT NULL,
    integration_id      TEXT,
    repo_id             TEXT NOT NULL DEFAULT '',
    repo_name           TEXT NOT NULL DEFAULT '',
    branch              TEXT NOT NULL DEFAULT '',
    tag                 TEXT NOT NULL DEFAULT '',
    tag_pattern         TEXT NOT NULL DEFAULT '',
    root_dir            TEXT NOT NULL DEFAULT '',
    watch_paths         TEXT NOT NULL DEFAULT '[]',
    auto_deploy         BOOLEAN NOT NULL DEFAULT FALSE,
    build               TEXT NOT NULL DEFAULT '{}',
    image               TEXT NOT NULL DEFAULT '',
    domains             TEXT NOT NULL DEFAULT '[]',
    auto_deploy_paused  BOOLEAN NOT NULL DEFAULT FALSE,
    live_deployment_id  TEXT NOT NULL DEFAULT '',
    deploy_hook_hash    BLOB  UNIQUE,
    created_at          INTEGER     NOT NULL,
    updated_at          INTEGER     NOT NULL,
    UNIQUE (id, org_id),
    FOREIGN KEY (application_id, org_id) REFERENCES applications (id, org_id) ON DELETE CASCADE,
    FOREIGN KEY (environment_id, org_id) REFERENCES environments (id, org_id) ON DELETE CASCADE,
    FOREIGN KEY (project_id, org_id) REFERENCES projects (id, org_id)
);
CREATE UNIQUE INDEX services_env_name ON services (environment_id, lower(name));
CREATE UNIQUE INDEX services_project_name ON services (project_id, lower(name));
CREATE INDEX services_org ON services (org_id);
CREATE INDEX services_repo ON services (integration_id, repo_id);

-- One row per routed host, so a domain belongs to one service across all
-- organisations and the router finds it with one index lookup.
CREATE TABLE service_domains (
    host        TEXT PRIMARY KEY,
    service_id  TEXT NOT NULL,
    org_id      TEXT NOT NULL,
    FOREIGN KEY (service_id, org_id) REFERENCES services (id, org_id) ON DELETE CASCADE
);
CREATE INDEX service_domains_service ON service_domains (service_id);

CREATE TABLE service_variables (
    service_id  TEXT NOT NULL,
    org_id      TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       BLOB  NOT NULL,
    secret      BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at  INTEGER     NOT NULL,
    PRIMARY KEY (service_id, key),
    FOREIGN KEY (service_id, org_id) REFERENCES services (id, org_id) ON DELETE CASCADE
);

CREATE TABLE deployments (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL,
    service_id      TEXT NOT NULL,
    status          TEXT NOT NULL,
    commit_sha      TEXT NOT NULL DEFAULT '',
    ref             TEXT NOT NULL DEFAULT '',
    commit_message  TEXT NOT NULL DEFAULT '',
    commit_author   TEXT NOT NULL DEFAULT '',
    trigger_kind    TEXT NOT NULL,
    triggered_by    TEXT NOT NULL DEFAULT '',
    integration_id  TEXT NOT NULL DEFAULT '',
    no_cache        BOOLEAN NOT NULL DEFAULT FALSE,
    rollback_of     TEXT NOT NULL DEFAULT '',
    error           TEXT NOT NULL DEFAULT '',
    phases          TEXT NOT NULL DEFAULT '[]',
    -- Automatic triggers set a key such as service+SHA: the database then
    -- guarantees at most one deployment per key however many events race.
    dedupe_key      TEXT UNIQUE,
    log_seq         BIGINT NOT NULL DEFAULT 0,
    created_at      INTEGER     NOT NULL,
    started_at      INTEGER    ,
    finished_at     INTEGER    ,
    UNIQUE (id, org_id),
    FOREIGN KEY (service_id, org_id) REFERENCES services (id, org_id) ON DELETE CASCADE
);
CREATE INDEX deployments_service ON deployments (service_id, created_at);
CREATE INDEX deployments_status ON deployments (status);

CREATE TABLE deployment_logs (
    deployment_id  TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    seq            BIGINT NOT NULL,
    at             INTEGER     NOT NULL,
    stream         TEXT NOT NULL DEFAULT '',
    line           TEXT NOT NULL,
    PRIMARY KEY (deployment_id, seq)
);

CREATE TABLE audit_entries (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    resource_type  TEXT NOT NULL DEFAULT '',
    resource_id    TEXT NOT NULL DEFAULT '',
    details        TEXT NOT NULL DEFAULT '{}',
    created_at     INTEGER     NOT NULL
);
CREATE INDEX audit_resource ON audit_entries (org_id, resource_type, resource_id, created_at);
