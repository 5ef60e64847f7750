// Package service holds Slipway's use cases: every action a user, a webhook
// or a worker can take, with its authorization check and its transaction.
// Edges (the JSON API, the dashboard, the webhook receiver, the CLI through
// the API) call it; it calls the store, the job queue and the forge
// providers. Every method that touches tenant data takes an Actor, checks
// the Actor's role, and scopes every query to the Actor's organisation, so
// a handler cannot forget the tenant check.
package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/store"
)

// Jobs inserts background jobs in the caller's transaction, so a job exists
// exactly when the change that caused it was committed.
type Jobs interface {
	// EnqueueDeploy schedules the pipeline of one deployment.
	EnqueueDeploy(ctx context.Context, tx *store.Tx, orgID, deploymentID string) error
	// EnqueueDelivery schedules the processing of one webhook delivery.
	EnqueueDelivery(ctx context.Context, tx *store.Tx, orgID, deliveryID string) error
}

// Config is what the service needs to know about its installation.
type Config struct {
	PublicURL  string // e.g. https://slipway.example.com; used in webhook, OAuth and status URLs
	BaseDomain string // services are reachable at <service>.<env>.<app>.<org-label>.<BaseDomain>
	// ControlHost is the control plane's public host name: no custom
	// domain may equal it, sit under it or above it (cookie scope).
	ControlHost string
	// ReservedHosts are the other names the control plane answers at (the
	// listen address, localhost, 127.0.0.1, ::1): never a Service's.
	ReservedHosts []string
	// LookupTXT is how custom-domain ownership is checked (the DNS TXT
	// record _slipway-challenge.<domain>); nil: the system resolver.
	LookupTXT func(ctx context.Context, name string) ([]string, error)
	// LookupIP resolves a custom domain for its HTTP proof (A/AAAA); nil:
	// the system resolver.
	LookupIP func(ctx context.Context, host string) ([]net.IPAddr, error)
	// DomainCheckHTTPPort is the port the HTTP proof is fetched on (0: 80;
	// tests set their listener's).
	DomainCheckHTTPPort int
	// Installation lists the installation settings `slipway serve` was
	// started with, shown to installation administrators.
	Installation []InstallationSetting
	// Network is where Slipway may connect on a tenant's behalf (provider
	// APIs, OAuth token URLs, git); the zero value is the strict default.
	Network netpolicy.Policy
	// DeliveryRetention bounds the delivery log; zero fields take the
	// defaults (DefaultDeliveryMaxAge, DefaultDeliveriesKept).
	DeliveryRetention DeliveryRetention
}

// DeliveryRetention is how long, and how many per integration, finished
// webhook deliveries are kept for troubleshooting.
type DeliveryRetention struct {
	MaxAge             time.Duration
	KeepPerIntegration int
}

// Delivery retention defaults.
const (
	DefaultDeliveryMaxAge = 30 * 24 * time.Hour
	DefaultDeliveriesKept = 1000
)

// Service is the set of use cases. Construct it with New.
type Service struct {
	store  *store.Store
	keys   *secrets.Keyring
	forges map[slipway.Provider]forge.Provider
	jobs   Jobs
	log    *slog.Logger
	cfg    Config
	now    func() time.Time
	tokens *tokenSources
	// releases is the deploy side, told when a Service's hosts change.
	releases Releases
	// refusals is the bounded in-memory log of refused webhook requests.
	refusals *refusalLog
	// http is the one client for tenant-chosen URLs (provider APIs, OAuth
	// token calls): it dials through cfg.Network and keeps its connections.
	http *http.Client
}

// New wires a Service. forges maps each provider to its implementation;
// cmd/slipway is the only place that names them.
func New(st *store.Store, keys *secrets.Keyring, forges map[slipway.Provider]forge.Provider, jobs Jobs, cfg Config, logger *slog.Logger) *Service {
	s := &Service{store: st, keys: keys, forges: forges, jobs: jobs, log: logger, cfg: cfg, now: time.Now}
	s.tokens = newTokenSources(s)
	s.refusals = newRefusalLog()
	s.http = cfg.Network.HTTPClient(30 * time.Second)
	return s
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Store returns the underlying store for workers that share it.
func (s *Service) Store() *store.Store { return s.store }

// Config returns the installation config.
func (s *Service) Config() Config { return s.cfg }

// Actor is who is acting: a user through a token or a session, within one
// organisation, with that membership's permissions.
type Actor struct {
	UserID      string
	OrgID       string
	RoleName    string
	Permissions slipway.Permissions
	TokenID     string
}

// String names the actor for audit and deployment records.
func (a Actor) String() string { return a.UserID }

// System is the actor for work Slipway does on its own (webhooks,
// reconciliation) inside one organisation.
func System(orgID, name string) Actor {
	return Actor{UserID: name, OrgID: orgID, RoleName: slipway.RoleAdmin, Permissions: slipway.AdminPermissions()}
}

func (a Actor) can(res slipway.Resource, act slipway.Action) error {
	if a.OrgID == "" {
		return slipway.Errorf(slipway.ECodeUnauthenticated, "authentication required")
	}
	if !a.Permissions.Allows(res, act) {
		return slipway.Errorf(slipway.ECodeForbidden, "your role %q does not allow %s on %s", a.RoleName, act, res)
	}
	return nil
}

// tokenPrefix marks Slipway API tokens so secret scanners can find leaked ones.
const tokenPrefix = "slw_"

// newSecretToken returns a random token with the given prefix and the
// SHA-256 hash under which it is stored.
func newSecretToken(prefix string) (token string, hash []byte) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	token = prefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token)
}

// HashToken is how bearer tokens, session ids and deploy-hook tokens are
// stored: a SHA-256, so a database leak yields no usable credential. The
// tokens carry 256 random bits, so a fast hash is sufficient.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Authenticate resolves a bearer token to an Actor.
func (s *Service) Authenticate(ctx context.Context, bearer string) (Actor, error) {
	if !strings.HasPrefix(bearer, tokenPrefix) {
		return Actor{}, slipway.Errorf(slipway.ECodeUnauthenticated, "invalid or expired token")
	}
	tok, err := s.store.LookupAPIToken(ctx, HashToken(bearer))
	if err != nil {
		if slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
			return Actor{}, slipway.Errorf(slipway.ECodeUnauthenticated, "invalid or expired token")
		}
		return Actor{}, fmt.Errorf("look up token: %w", err)
	}
	a, err := s.actorFor(ctx, tok.OrgID, tok.UserID)
	if err != nil {
		return Actor{}, err
	}
	a.TokenID = tok.ID
	// "Last used" needs minute precision; a durable write on every API
	// request does not pay for it.
	if now := s.now(); tok.LastUsedAt == nil || now.Sub(*tok.LastUsedAt) > time.Minute {
		if err := s.store.TouchAPIToken(ctx, tok.ID, now); err != nil {
			s.log.Warn("touch api token", "token", tok.ID, "err", err)
		}
	}
	return a, nil
}

// ActorFor builds the Actor of a user in an organisation (sessions, org
// switching). A user who is not a member gets ECodeNotFound.
func (s *Service) ActorFor(ctx context.Context, orgID, userID string) (Actor, error) {
	return s.actorFor(ctx, orgID, userID)
}

func (s *Service) actorFor(ctx context.Context, orgID, userID string) (Actor, error) {
	m, err := s.store.GetMembership(ctx, orgID, userID)
	if err != nil {
		if slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
			return Actor{}, slipway.Errorf(slipway.ECodeUnauthenticated, "not a member of this organisation")
		}
		return Actor{}, fmt.Errorf("load membership: %w", err)
	}
	role, err := s.store.GetRole(ctx, orgID, m.RoleID)
	if err != nil {
		return Actor{}, fmt.Errorf("load role: %w", err)
	}
	perms := role.Permissions
	if role.BuiltIn && role.Name == slipway.RoleAdmin {
		perms = slipway.AdminPermissions() // Admin always has everything, even resources added later
	}
	return Actor{UserID: userID, OrgID: orgID, RoleName: role.Name, Permissions: perms}, nil
}

func (s *Service) audit(ctx context.Context, q auditWriter, a Actor, action, resType, resID string, details map[string]string) {
	e := &slipway.AuditEntry{ID: slipway.NewID(slipway.PrefixAudit), OrgID: a.OrgID, Actor: a.String(), Action: action,
		ResourceType: resType, ResourceID: resID, Details: details, CreatedAt: s.now().UTC()}
	if err := q.InsertAudit(ctx, e); err != nil {
		s.log.Warn("write audit entry", "action", action, "err", err)
	}
}

type auditWriter interface {
	InsertAudit(ctx context.Context, e *slipway.AuditEntry) error
}

// requireName validates a user-given name: 1–63 characters of lower-case
// letters, digits and dashes, starting with a letter, because names become
// DNS labels in service hostnames.
func requireName(kind, name string) error {
	if name == "" {
		return slipway.Errorf(slipway.ECodeInvalid, "%s name is required", kind)
	}
	if len(name) > 63 {
		return slipway.Errorf(slipway.ECodeInvalid, "%s name %q is longer than 63 characters", kind, name)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' && i > 0 || r == '-' && i > 0 && i < len(name)-1
		if !ok {
			return slipway.Errorf(slipway.ECodeInvalid, "%s name %q must be lower-case letters, digits and dashes, starting with a letter", kind, name)
		}
	}
	return nil
}
