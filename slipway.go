// Package slipway holds Slipway's domain: the types every other package
// speaks (organisations, integrations, applications, environments, services,
// deployments, legacy projects), the deployment status machine, normalized
// Git events and the error codes the API exposes. It imports the standard
// library only, so every layer can depend on it and it depends on none.
package slipway

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"
)

// NewID returns a new random identifier with a readable type prefix, for
// example "app_5k2q9x3m7d1c8v4b". Prefixes make IDs self-describing in logs
// and URLs; 80 random bits make collisions irrelevant.
func NewID(prefix string) string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("slipway: crypto/rand failed: " + err.Error()) // the OS RNG never fails on supported platforms
	}
	return prefix + "_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// ID prefixes, one per entity type.
const (
	PrefixOrganisation = "org"
	PrefixUser         = "usr"
	PrefixRole         = "role"
	PrefixToken        = "tok"
	PrefixIntegration  = "int"
	PrefixApplication  = "app"
	PrefixEnvironment  = "env"
	PrefixService      = "svc"
	PrefixDeployment   = "dep"
	PrefixProject      = "prj"
	PrefixDelivery     = "dlv"
	PrefixHook         = "hook"
	PrefixAudit        = "aud"
	PrefixInvitation   = "inv"
)

// Organisation is the tenant. Nothing crosses its boundary.
type Organisation struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// HostLabel is the DNS label, unique across the installation and
	// never changed, that the organisation's generated hosts end in
	// (<service>.<environment>.<application>.<host-label>.<base-domain>).
	HostLabel string    `json:"host_label,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// User is a person (or robot) who can sign in and hold API tokens.
type User struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Membership ties a user to an organisation with one role.
type Membership struct {
	OrgID     string    `json:"org_id"`
	UserID    string    `json:"user_id"`
	RoleID    string    `json:"role_id"`
	User      *User     `json:"user,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Invitation asks an existing user to join an organisation with a role.
// Nothing is attached until that user accepts it.
type Invitation struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"org_id"`
	OrgName   string    `json:"org_name,omitempty"`
	UserID    string    `json:"user_id"`
	RoleID    string    `json:"role_id"`
	RoleName  string    `json:"role_name,omitempty"`
	InvitedBy string    `json:"invited_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// APIToken is a bearer token. Only a hash of the secret is stored; the secret
// is shown once, when the token is created.
type APIToken struct {
	ID         string     `json:"id"`
	OrgID      string     `json:"org_id"`
	UserID     string     `json:"user_id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
}

// Integration is a connection to one Git provider account, installation or
// instance. Credentials never live on this struct: they are stored
// encrypted, separately, and only the forge layer sees them decrypted.
type Integration struct {
	ID            string            `json:"id"`
	OrgID         string            `json:"org_id"`
	Provider      Provider          `json:"provider"`
	Label         string            `json:"label"`
	AuthMethod    AuthMethod        `json:"auth_method"`
	BaseURL       string            `json:"base_url,omitempty"`
	InternalURL   string            `json:"internal_url,omitempty"`
	AccountName   string            `json:"account_name,omitempty"`   // the user, org or installation account the connection acts as
	ExternalID    string            `json:"external_id,omitempty"`    // e.g. the GitHub installation id
	RepoSelection string            `json:"repo_selection,omitempty"` // GitHub: "all" or "selected"
	Scopes        []string          `json:"scopes,omitempty"`
	Status        IntegrationStatus `json:"status"`
	StatusReason  string            `json:"status_reason,omitempty"`
	StatusFix     string            `json:"status_fix,omitempty"`
	Settings      map[string]string `json:"settings,omitempty"` // non-secret provider settings (app id, app slug, …)
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
	CheckedAt     *time.Time        `json:"checked_at,omitempty"`
}

// Provider names a kind of Git host.
type Provider string

// The providers Slipway connects to.
const (
	ProviderGitHub      Provider = "github"
	ProviderGitLab      Provider = "gitlab"
	ProviderBitbucket   Provider = "bitbucket"
	ProviderAzureDevOps Provider = "azuredevops"
	ProviderGitea       Provider = "gitea"
	ProviderGit         Provider = "git" // generic Git over HTTPS or SSH, polled
)

// Providers lists every provider in display order.
var Providers = []Provider{ProviderGitHub, ProviderGitLab, ProviderBitbucket, ProviderAzureDevOps, ProviderGitea, ProviderGit}

// Valid reports whether p names a known provider.
func (p Provider) Valid() bool {
	for _, q := range Providers {
		if p == q {
			return true
		}
	}
	return false
}

// AuthMethod is how an integration authenticates to its provider.
type AuthMethod string

// Authentication methods.
const (
	AuthGitHubApp  AuthMethod = "github_app"
	AuthOAuth      AuthMethod = "oauth"
	AuthToken      AuthMethod = "token"       // personal/project/group/workspace access token
	AuthBasicToken AuthMethod = "basic_token" // user or email + token (Bitbucket API token, generic Git HTTPS)
	AuthSSHKey     AuthMethod = "ssh_key"     // generic Git over SSH with a generated deploy key
	AuthNone       AuthMethod = "none"        // public generic Git
)

// IntegrationStatus is what the Integrations page shows.
type IntegrationStatus string

// Integration statuses.
const (
	IntegrationConnected      IntegrationStatus = "connected"
	IntegrationNeedsAttention IntegrationStatus = "needs_attention"
	IntegrationDisconnected   IntegrationStatus = "disconnected"
	IntegrationPending        IntegrationStatus = "pending" // created, provider flow not finished yet
)

// AppStatus is an Application's lifecycle state.
type AppStatus string

// Application lifecycle states.
const (
	AppDraft    AppStatus = "draft"
	AppActive   AppStatus = "active"
	AppArchived AppStatus = "archived"
)

// Application is a product boundary holding Environments.
type Application struct {
	ID                   string    `json:"id"`
	OrgID                string    `json:"org_id"`
	Name                 string    `json:"name"`
	Description          string    `json:"description,omitempty"`
	Status               AppStatus `json:"status"`
	DefaultEnvironmentID string    `json:"default_environment_id,omitempty"`
	MigratedFromProject  string    `json:"migrated_from_project,omitempty"`
	CreatedAt            time.Time `json:"created_at"`
	UpdatedAt            time.Time `json:"updated_at"`
}

// EnvStatus is an Environment's lifecycle state.
type EnvStatus string

// Environment lifecycle states.
const (
	EnvDraft  EnvStatus = "draft"
	EnvActive EnvStatus = "active"
)

// Environment is a stage of an Application (production, staging, …) and the
// place compute is attached.
type Environment struct {
	ID            string    `json:"id"`
	OrgID         string    `json:"org_id"`
	ApplicationID string    `json:"application_id"`
	Name          string    `json:"name"`
	Status        EnvStatus `json:"status"`
	IsDefault     bool      `json:"is_default"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// ServiceType says how a Service gets its code.
type ServiceType string

// Service types.
const (
	ServiceApp    ServiceType = "app"    // builds from Git
	ServiceDocker ServiceType = "docker" // runs an image
)

// Service is a deployable unit inside an Environment.
type Service struct {
	ID               string        `json:"id"`
	OrgID            string        `json:"org_id"`
	ApplicationID    string        `json:"application_id,omitempty"`
	EnvironmentID    string        `json:"environment_id,omitempty"`
	ProjectID        string        `json:"project_id,omitempty"` // legacy: set while the Service still lives in a Project
	Name             string        `json:"name"`
	Type             ServiceType   `json:"type"`
	Source           ServiceSource `json:"source"`
	Build            BuildSettings `json:"build"`
	Image            string        `json:"image,omitempty"` // docker services
	Domains          []string      `json:"domains,omitempty"`
	AutoDeployPaused bool          `json:"auto_deploy_paused"` // set by a rollback until the user resumes
	LiveDeploymentID string        `json:"live_deployment_id,omitempty"`
	LastSeenHead     string        `json:"last_seen_head,omitempty"` // the reconciler's last observed head commit
	// MaxBodyMB is the largest request body the router lets through to
	// the Service, in MiB (MinMaxBodyMB..MaxMaxBodyMB; 0 reads as
	// DefaultMaxBodyMB). Larger bodies are answered 413.
	MaxBodyMB int `json:"max_body_mb"`
	// HSTS makes the router send Strict-Transport-Security on responses
	// served over HTTPS (never over plain HTTP). Off by default.
	HSTS bool `json:"hsts"`
	// Hosts are every host name the Service answers at, read from the
	// host claims (filled by the use cases on reads, never stored here).
	Hosts     []HostClaim `json:"hosts,omitempty"`
	CreatedAt time.Time   `json:"created_at"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// Request-body limits of a Service, in MiB.
const (
	DefaultMaxBodyMB = 100
	MinMaxBodyMB     = 1
	MaxMaxBodyMB     = 10240
)

// EffectiveMaxBodyMB is the Service's body limit, DefaultMaxBodyMB when
// unset.
func (s Service) EffectiveMaxBodyMB() int {
	if s.MaxBodyMB <= 0 {
		return DefaultMaxBodyMB
	}
	return s.MaxBodyMB
}

// HostKind says where a host claim comes from.
type HostKind string

// Host kinds.
const (
	HostGenerated HostKind = "generated" // <service>.<environment>.<application>.<org-label>.<base-domain>
	HostCustom    HostKind = "custom"    // a domain the user added
	HostProject   HostKind = "project"   // a legacy Project host, <service>.<project>.<base-domain>
	// HostPrevious is the generated host a Service answered at before
	// host claims existed (without the organisation label), kept after
	// the upgrade so existing links keep working.
	HostPrevious HostKind = "previous"
)

// HostState is whether a claimed host is routed.
type HostState string

// Host states.
const (
	HostActive  HostState = "active"  // routed to the Service's live release
	HostPending HostState = "pending" // waiting for proof of ownership; never routed
)

// DomainVerification is a custom domain a Service asked for, waiting for
// its owner to prove control of it: a TXT record named
// _slipway-challenge.<domain> carrying Token. Until then it is not routed
// and blocks nobody.
type DomainVerification struct {
	Domain    string     `json:"domain"`
	Token     string     `json:"token"`
	OrgID     string     `json:"-"`
	ServiceID string     `json:"-"`
	CreatedAt time.Time  `json:"created_at"`
	CheckedAt *time.Time `json:"checked_at,omitempty"`
	LastError string     `json:"last_error,omitempty"`
}

// ChallengeRecordName is the TXT record that proves control of domain.
func ChallengeRecordName(domain string) string { return "_slipway-challenge." + domain }

// HostClaim is one host name held by one Service. A host is held by at most
// one Service across the whole installation.
type HostClaim struct {
	Host      string    `json:"name"`
	Kind      HostKind  `json:"kind"`
	State     HostState `json:"state"`
	OrgID     string    `json:"-"`
	ServiceID string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// ServiceSource links an app Service to a repository and a branch or tag.
// Exactly one of Branch, Tag or TagPattern is set.
type ServiceSource struct {
	IntegrationID string   `json:"integration_id,omitempty"`
	RepoID        string   `json:"repo_id,omitempty"`   // the provider's immutable repository id
	RepoName      string   `json:"repo_name,omitempty"` // owner/name, refreshed on rename
	Branch        string   `json:"branch,omitempty"`
	Tag           string   `json:"tag,omitempty"`
	TagPattern    string   `json:"tag_pattern,omitempty"` // e.g. "v*"
	RootDir       string   `json:"root_dir,omitempty"`
	WatchPaths    []string `json:"watch_paths,omitempty"`
	AutoDeploy    bool     `json:"auto_deploy"`
}

// BuildSettings are the commands a process-runtime build runs. Empty fields
// fall back to detected defaults.
type BuildSettings struct {
	InstallCommand string `json:"install_command,omitempty"`
	BuildCommand   string `json:"build_command,omitempty"`
	StartCommand   string `json:"start_command,omitempty"`
	HealthPath     string `json:"health_path,omitempty"`
	Dockerfile     string `json:"dockerfile,omitempty"`
	Replicas       int    `json:"replicas,omitempty"`
	// SubmoduleCredentials lets a build fetch submodules whose
	// repositories the Service's integration can see, each with its own
	// credential (narrowed to that repository where the provider can).
	// Off by default: submodules are fetched without credentials, so a
	// commit cannot borrow the integration's access to other repositories.
	SubmoduleCredentials bool `json:"submodule_credentials,omitempty"`
}

// Project is the legacy flat grouping that held Services directly and was
// tied to the compute it ran on. Projects are read-only history now: they
// migrate into an Application and its Environments.
type Project struct {
	ID                    string     `json:"id"`
	OrgID                 string     `json:"org_id"`
	Name                  string     `json:"name"`
	Compute               string     `json:"compute,omitempty"` // the server/compute target the Project was tied to
	MigratedToEnvironment string     `json:"migrated_to_environment,omitempty"`
	MigratedToApplication string     `json:"migrated_to_application,omitempty"`
	DeletedAt             *time.Time `json:"deleted_at,omitempty"`
	CreatedAt             time.Time  `json:"created_at"`
}

// AuditEntry records who did what to which resource.
type AuditEntry struct {
	ID           string            `json:"id"`
	OrgID        string            `json:"org_id"`
	Actor        string            `json:"actor"`
	Action       string            `json:"action"`
	ResourceType string            `json:"resource_type"`
	ResourceID   string            `json:"resource_id"`
	Details      map[string]string `json:"details,omitempty"`
	CreatedAt    time.Time         `json:"created_at"`
}
