// Package forge is the provider-neutral face of Git hosts. It defines the
// types every provider speaks (repositories, refs, clone credentials, hooks)
// and small capability interfaces of one to three methods. A provider
// package (forge/github, forge/gitea, …) implements the capabilities its
// host offers; callers discover optional ones with a type assertion, so no
// provider carries stubs for what it cannot do.
//
// Providers never touch the store, never log credentials, and never decide
// policy: they translate between Slipway and one provider's API.
package forge

import (
	"context"
	"errors"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/netpolicy"
)

// Provider is the one method every provider implements. Everything else is
// an optional capability below.
type Provider interface {
	Kind() slipway.Provider
}

// Secret is an integration's decrypted credential material. It exists only
// in memory, is never serialized into an API response or a log line, and
// its String method hides its content so a stray %v prints nothing useful.
type Secret struct {
	Token         string    `json:"token,omitempty"`          // access token, PAT, OAuth access token
	RefreshToken  string    `json:"refresh_token,omitempty"`  // OAuth refresh token
	Expiry        time.Time `json:"expiry,omitzero"`          // access token expiry, zero when it does not expire
	Username      string    `json:"username,omitempty"`       // basic-auth user or email (Bitbucket API token, generic Git)
	PrivateKey    string    `json:"private_key,omitempty"`    // GitHub App private key (PEM) or SSH deploy key (OpenSSH PEM)
	AppID         string    `json:"app_id,omitempty"`         // GitHub App id
	ClientID      string    `json:"client_id,omitempty"`      // OAuth client id
	ClientSecret  string    `json:"client_secret,omitempty"`  // OAuth client secret
	WebhookSecret string    `json:"webhook_secret,omitempty"` // app-level webhook secret (GitHub App)
}

// String keeps secrets out of fmt output.
func (Secret) String() string { return "forge.Secret{…}" }

// GoString keeps secrets out of %#v output.
func (s Secret) GoString() string { return s.String() }

// TokenSource yields a currently valid access token. The service layer
// supplies one that refreshes OAuth tokens (collapsing concurrent refreshes
// and persisting rotated refresh tokens); providers just call it.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// Conn is everything a provider needs to act for one integration.
type Conn struct {
	Integration slipway.Integration
	Secret      Secret
	// Tokens, when set, is the source of access tokens (OAuth with refresh,
	// GitHub App installation tokens). When nil, Secret.Token is used.
	Tokens TokenSource
	// HTTP is the client for API calls; nil means a default client with a
	// timeout. The use cases hand in one that dials through Network.
	HTTP *http.Client
	// Network is where the provider may connect for this tenant; code
	// that dials itself (git) applies it. The zero value is the strict
	// default (https and ssh to public addresses).
	Network netpolicy.Policy
}

// AccessToken returns the token to call the provider's API with.
func (c *Conn) AccessToken(ctx context.Context) (string, error) {
	if c.Tokens != nil {
		return c.Tokens.Token(ctx)
	}
	return c.Secret.Token, nil
}

// APIBaseURL is the URL server-to-server calls go to: the internal URL
// when one is configured, the public base URL otherwise.
func (c *Conn) APIBaseURL() string {
	if c.Integration.InternalURL != "" {
		return c.Integration.InternalURL
	}
	return c.Integration.BaseURL
}

// HTTPClient returns c.HTTP or a default client with a sane timeout.
func (c *Conn) HTTPClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// Repo is a repository as the provider reports it. ID is the provider's
// immutable id: Slipway tracks repositories by it so renames and transfers
// keep working.
type Repo struct {
	ID            string    `json:"id"`
	FullName      string    `json:"full_name"` // owner/name (Azure DevOps: project/name)
	DefaultBranch string    `json:"default_branch,omitempty"`
	CloneURL      string    `json:"clone_url"` // HTTPS clone URL (SSH for generic Git over SSH)
	HTMLURL       string    `json:"html_url,omitempty"`
	Private       bool      `json:"private"`
	Archived      bool      `json:"archived,omitempty"`
	UpdatedAt     time.Time `json:"updated_at,omitzero"`
}

// RefKind says whether a ref is a branch or a tag.
type RefKind string

// Ref kinds.
const (
	RefBranch RefKind = "branch"
	RefTag    RefKind = "tag"
)

// Ref is a branch or tag and the commit it points at.
type Ref struct {
	Name string  `json:"name"`
	Kind RefKind `json:"kind"`
	SHA  string  `json:"sha"`
}

// ListOptions filter and paginate a repository listing. Page starts at 1.
type ListOptions struct {
	Search  string
	Page    int
	PerPage int
}

// RepoPage is one page of repositories. NextPage is 0 on the last page.
type RepoPage struct {
	Repos    []Repo `json:"repos"`
	NextPage int    `json:"next_page,omitempty"`
	// ETag, when the provider supports conditional requests, lets a re-sync
	// ask "changed since?" at no rate-limit cost.
	ETag string `json:"-"`
}

// CheckResult is what a connection check found: who the credential acts
// as, what scopes it carries, and every problem with the fix for it.
type CheckResult struct {
	Account  string    `json:"account"`
	Scopes   []string  `json:"scopes,omitempty"`
	Missing  []string  `json:"missing_scopes,omitempty"`
	Problems []Problem `json:"problems,omitempty"`
}

// Problem is one thing wrong with a connection and how to fix it.
type Problem struct {
	Code    slipway.ErrorCode `json:"code"`
	Message string            `json:"message"`
	Fix     string            `json:"fix"`
}

// Checker verifies a connection: the credential works, the scopes are
// sufficient, the base URL answers. Errors: ECodeCredentialsInvalid when
// the provider rejects the credential, ECodeScopesMissing (with the
// names), ECodeProviderUnreachable when the host does not answer.
type Checker interface {
	Check(ctx context.Context, c *Conn) (CheckResult, error)
}

// RepoLister lists the repositories a connection was granted.
// GetRepo returns slipway ECodeRepoNotVisible when the repository does not
// exist or the connection cannot see it.
type RepoLister interface {
	ListRepos(ctx context.Context, c *Conn, opt ListOptions) (RepoPage, error)
	GetRepo(ctx context.Context, c *Conn, repoID string) (Repo, error)
}

// RefLister lists branches and tags and resolves one to a commit.
// ResolveRef takes a short branch or tag name (or a SHA) and returns
// ECodeRefNotFound when it does not exist.
type RefLister interface {
	ListRefs(ctx context.Context, c *Conn, repo Repo) ([]Ref, error)
	ResolveRef(ctx context.Context, c *Conn, repo Repo, ref string) (slipway.Commit, error)
}

// CloneCredentials is what git needs to fetch one repository. They are
// short-lived where the provider allows (GitHub: an installation token
// narrowed to the one repository with contents:read).
type CloneCredentials struct {
	URL        string    // clone URL without credentials
	Username   string    // HTTPS basic-auth user
	Password   string    // HTTPS basic-auth password or token
	SSHKey     string    // OpenSSH private key, for SSH URLs
	KnownHosts string    // known_hosts lines for SSH URLs, if pinned
	ExpiresAt  time.Time // zero when they do not expire
}

// String keeps credentials out of fmt output.
func (CloneCredentials) String() string { return "forge.CloneCredentials{…}" }

// Cloner mints the least-privilege credentials to clone one repository.
type Cloner interface {
	CloneCredentials(ctx context.Context, c *Conn, repo Repo) (CloneCredentials, error)
}

// HookConfig describes the repository webhook Slipway wants.
type HookConfig struct {
	URL    string // Slipway's receiver: {public-url}/hooks/{provider}/{integration}
	Secret string // per-hook secret used to sign or authenticate deliveries
}

// HookInstaller creates and removes repository-level webhooks, for
// providers without an app-level hook. InstallHook returns the provider's
// hook id. RemoveHook treats an already-removed hook as success.
type HookInstaller interface {
	InstallHook(ctx context.Context, c *Conn, repo Repo, hook HookConfig) (hookID string, err error)
	RemoveHook(ctx context.Context, c *Conn, repo Repo, hookID string) error
}

// HookTargetChecker is implemented by providers that deliver webhooks only
// to some receiver URLs (Azure DevOps sends basic-auth service hooks only
// to https). Connect calls it with the URL deliveries would go to, so a
// connection that could never receive a webhook is refused with the fix
// rather than failing at its first hook. Errors: ECodeInvalid with a fix.
type HookTargetChecker interface {
	CheckHookTarget(hookURL string) error
}

// Errors a HookParser returns. Anything else is a malformed payload.
var (
	// ErrBadSignature: the signature (or token, or basic-auth secret) is
	// missing or does not match. The receiver answers 401 and stores
	// nothing but a counter.
	ErrBadSignature = errors.New("webhook signature missing or invalid")
	// ErrIgnored: a valid delivery of an event Slipway does not act on.
	// The receiver answers 2xx and records it as ignored.
	ErrIgnored = errors.New("event ignored")
)

// HookParser verifies a delivery on its raw bytes (in constant time) and
// translates it into a normalized event. secret is the hook's secret (or,
// for GitHub, the App's webhook secret). The returned event carries the
// provider's delivery id when the provider sends one.
type HookParser interface {
	ParseHook(header http.Header, body []byte, secret string) (slipway.Event, error)
}

// MultiHookParser is implemented by providers whose single delivery can
// carry several ref updates (Bitbucket and Azure DevOps send one delivery
// for `git push origin main v1.2`). It returns one event per ref, all
// with the delivery's id; the receiver prefers it over ParseHook so no
// ref is dropped.
type MultiHookParser interface {
	ParseHookEvents(header http.Header, body []byte, secret string) ([]slipway.Event, error)
}

// Comparer lists the files changed between two commits, for watch paths.
// Push payloads truncate their commit lists, so this is the authority.
type Comparer interface {
	ChangedFiles(ctx context.Context, c *Conn, repo Repo, base, head string) ([]string, error)
}

// StatusState is a commit status state.
type StatusState string

// Commit status states.
const (
	StatusPending StatusState = "pending"
	StatusSuccess StatusState = "success"
	StatusFailure StatusState = "failure"
)

// CommitStatus is what Slipway reports on a commit.
type CommitStatus struct {
	State       StatusState
	Context     string // e.g. "slipway/production/web"
	Description string
	TargetURL   string // link to the deployment in the dashboard
}

// StatusReporter sets a commit status on the provider.
type StatusReporter interface {
	SetCommitStatus(ctx context.Context, c *Conn, repo Repo, sha string, st CommitStatus) error
}

// OAuthProvider describes a provider's OAuth2 endpoints and the scopes
// Slipway asks for. The service layer runs the flow (state, PKCE, code
// exchange, refresh) with golang.org/x/oauth2.
type OAuthProvider interface {
	OAuthEndpoint(baseURL string) oauth2.Endpoint
	OAuthScopes() []string
}
