// Package gitgeneric is the forge provider for any Git server reachable
// over HTTPS (public, or with a username and token) or SSH (with an
// Ed25519 deploy key Slipway generates). It knows exactly one repository,
// the URL in Integration.Settings["url"], and talks to it only through the
// git CLI (git ls-remote); credentials reach git through internal/gitcred.
package gitgeneric

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/crypto/ssh"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/gitcred"
)

// SettingURL is the Integration.Settings key holding the repository URL.
const SettingURL = "url"

// Provider is the generic Git provider. The zero value is ready to use.
type Provider struct{}

// New returns the generic Git provider.
func New() *Provider { return &Provider{} }

var (
	_ forge.Provider   = (*Provider)(nil)
	_ forge.Checker    = (*Provider)(nil)
	_ forge.RepoLister = (*Provider)(nil)
	_ forge.RefLister  = (*Provider)(nil)
	_ forge.Cloner     = (*Provider)(nil)
)

// Kind names the provider.
func (*Provider) Kind() slipway.Provider { return slipway.ProviderGit }

// GenerateDeployKey returns a new Ed25519 key: the private key in OpenSSH
// format and the public key as an authorized_keys line.
func GenerateDeployKey() (privateOpenSSH, publicAuthorizedKey string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("gitgeneric: generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "slipway deploy key")
	if err != nil {
		return "", "", fmt.Errorf("gitgeneric: marshal key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", "", fmt.Errorf("gitgeneric: public key: %w", err)
	}
	return string(pem.EncodeToMemory(block)), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " slipway", nil
}

// NormalizeURL lowercases scheme and host and drops a trailing slash and
// ".git", so equivalent spellings of a URL give the same repository id.
func NormalizeURL(raw string) string {
	s := strings.TrimSpace(raw)
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		u.Scheme = strings.ToLower(u.Scheme)
		u.Host = strings.ToLower(u.Host)
		u.User = nil
		s = u.String()
	}
	s = strings.TrimSuffix(strings.TrimSuffix(s, "/"), ".git")
	return s
}

// RepoID is the stable id of the repository at rawURL.
func RepoID(rawURL string) string {
	sum := sha256.Sum256([]byte(NormalizeURL(rawURL)))
	return hex.EncodeToString(sum[:16])
}

func repoURL(c *forge.Conn) (string, error) {
	u := c.Integration.Settings[SettingURL]
	if u == "" {
		u = c.Integration.BaseURL
	}
	if u == "" {
		return "", slipway.Errorf(slipway.ECodeInvalid, "git: the integration has no repository URL")
	}
	if p, err := url.Parse(u); err == nil && p.User != nil {
		if _, hasPassword := p.User.Password(); hasPassword {
			return "", slipway.Errorf(slipway.ECodeInvalid, "git: the repository URL must not contain a password; set it as the token")
		}
	}
	return u, nil
}

func repoOf(u string) forge.Repo {
	name := NormalizeURL(u)
	if p, err := url.Parse(name); err == nil && p.Path != "" {
		name = strings.TrimPrefix(p.Path, "/")
	} else if _, path, ok := strings.Cut(name, ":"); ok { // scp-like git@host:owner/repo
		name = path
	}
	return forge.Repo{ID: RepoID(u), FullName: name, CloneURL: u}
}

func (p *Provider) creds(ctx context.Context, c *forge.Conn, u string) (forge.CloneCredentials, error) {
	token, err := c.AccessToken(ctx)
	if err != nil {
		return forge.CloneCredentials{}, fmt.Errorf("git: access token: %w", err)
	}
	return forge.CloneCredentials{URL: u, Username: c.Secret.Username, Password: token, SSHKey: c.Secret.PrivateKey}, nil
}

// lsRemote runs git ls-remote with the connection's credentials.
func (p *Provider) lsRemote(ctx context.Context, c *forge.Conn, args ...string) ([]byte, error) {
	u, err := repoURL(c)
	if err != nil {
		return nil, err
	}
	creds, err := p.creds(ctx, c, u)
	if err != nil {
		return nil, err
	}
	// The URL is the tenant's: git may only dial where the installation's
	// policy allows, with no inherited environment or git configuration.
	g, err := c.Network.Git(ctx, u)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	env, cleanup, err := gitcred.Env(creds, g.SSH)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	home, err := os.MkdirTemp("", "slipway-ls-remote-")
	if err != nil {
		return nil, fmt.Errorf("git: temp home: %w", err)
	}
	defer os.RemoveAll(home)
	argv := append(append(append([]string{}, g.Config...), "ls-remote"), args...)
	cmd := exec.CommandContext(ctx, "git", append(argv, "--", u)...)
	cmd.Env = append(g.Env(home), env...)
	cmd.Dir = home
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if refused := g.Refused(); refused != nil {
			return nil, refused
		}
		return nil, classify(u, stderr.String(), err)
	}
	return out, nil
}

// classify maps a failed git ls-remote to a slipway error from git's
// message. The message itself is the remote's (or shaped by it) and the
// error lands in tenant-visible fields (status reason, check problems), so
// only the class is reported, never the text.
func classify(u, stderr string, err error) error {
	msg := strings.TrimSpace(stderr)
	// Classify on git's words only: the URL or path git echoes may hold
	// anything (a temporary directory named ...401..., a repo called
	// "not-found").
	low := strings.ToLower(msg)
	for _, echoed := range []string{u, strings.TrimPrefix(u, "file://")} {
		if echoed != "" {
			low = strings.ReplaceAll(low, strings.ToLower(echoed), "")
		}
	}
	var code slipway.ErrorCode
	var fix string
	switch {
	case strings.Contains(low, "authentication failed"), strings.Contains(low, "permission denied"),
		strings.Contains(low, "could not read username"), strings.Contains(low, "could not read password"),
		strings.Contains(low, "returned error: 403"), strings.Contains(low, "returned error: 401"):
		code, fix = slipway.ECodeCredentialsInvalid, "Check the username and token, or add the deploy key to the repository."
	case strings.Contains(low, "not found"), strings.Contains(low, "does not appear to be a git repository"),
		strings.Contains(low, "repository") && strings.Contains(low, "not exist"):
		code, fix = slipway.ECodeRepoNotVisible, "Check the repository URL."
	case strings.Contains(low, "could not resolve host"), strings.Contains(low, "connection refused"),
		strings.Contains(low, "failed to connect"), strings.Contains(low, "timed out"), strings.Contains(low, "couldn't connect"):
		code, fix = slipway.ECodeProviderUnreachable, "Check the URL and that Slipway can reach the server."
	default:
		code = slipway.ECodeProviderError
	}
	e := slipway.Errorf(code, "git: %s: %s", NormalizeURL(u), gitFailure[code]).WithFix(fix)
	return fmt.Errorf("%w (%w)", e, err)
}

// gitFailure is what a failed ls-remote is reported as, per class.
var gitFailure = map[slipway.ErrorCode]string{
	slipway.ECodeCredentialsInvalid:  "the server refused the credentials",
	slipway.ECodeRepoNotVisible:      "the server has no repository there (or hides it from these credentials)",
	slipway.ECodeProviderUnreachable: "the server could not be reached",
	slipway.ECodeProviderError:       "git ls-remote failed",
}

// Check runs git ls-remote against the URL.
func (p *Provider) Check(ctx context.Context, c *forge.Conn) (forge.CheckResult, error) {
	u, err := repoURL(c)
	if err != nil {
		return forge.CheckResult{}, err
	}
	if _, err := p.lsRemote(ctx, c, "--heads"); err != nil {
		res := forge.CheckResult{}
		if e, ok := slipway.AsError(err); ok {
			res.Problems = []forge.Problem{{Code: e.Code, Message: e.Message, Fix: e.Fix}}
		}
		return res, err
	}
	account := c.Secret.Username
	if account == "" {
		account = NormalizeURL(u)
	}
	return forge.CheckResult{Account: account}, nil
}

// ListRepos lists the one configured repository.
func (p *Provider) ListRepos(ctx context.Context, c *forge.Conn, opt forge.ListOptions) (forge.RepoPage, error) {
	u, err := repoURL(c)
	if err != nil {
		return forge.RepoPage{}, err
	}
	r := repoOf(u)
	if opt.Page > 1 || (opt.Search != "" && !strings.Contains(strings.ToLower(r.FullName), strings.ToLower(opt.Search))) {
		return forge.RepoPage{Repos: []forge.Repo{}}, nil
	}
	return forge.RepoPage{Repos: []forge.Repo{r}}, nil
}

// GetRepo returns the configured repository when repoID is its id.
func (p *Provider) GetRepo(ctx context.Context, c *forge.Conn, repoID string) (forge.Repo, error) {
	u, err := repoURL(c)
	if err != nil {
		return forge.Repo{}, err
	}
	if r := repoOf(u); r.ID == repoID {
		return r, nil
	}
	return forge.Repo{}, slipway.Errorf(slipway.ECodeRepoNotVisible, "git: repository %q is not the one this integration points at", repoID)
}

// ListRefs lists branches and tags with git ls-remote; annotated tags are
// reported at the commit they point to (the peeled ^{} line).
func (p *Provider) ListRefs(ctx context.Context, c *forge.Conn, repo forge.Repo) ([]forge.Ref, error) {
	out, err := p.lsRemote(ctx, c, "--heads", "--tags")
	if err != nil {
		return nil, err
	}
	return ParseLsRemote(out), nil
}

// ParseLsRemote parses `git ls-remote --heads --tags` output.
func ParseLsRemote(out []byte) []forge.Ref {
	var refs []forge.Ref
	index := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		sha, name, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(name, "refs/heads/"):
			refs = append(refs, forge.Ref{Name: strings.TrimPrefix(name, "refs/heads/"), Kind: forge.RefBranch, SHA: sha})
		case strings.HasPrefix(name, "refs/tags/") && strings.HasSuffix(name, "^{}"):
			tag := strings.TrimSuffix(strings.TrimPrefix(name, "refs/tags/"), "^{}")
			if i, ok := index[tag]; ok {
				refs[i].SHA = sha
			} else {
				index[tag] = len(refs)
				refs = append(refs, forge.Ref{Name: tag, Kind: forge.RefTag, SHA: sha})
			}
		case strings.HasPrefix(name, "refs/tags/"):
			tag := strings.TrimPrefix(name, "refs/tags/")
			if _, ok := index[tag]; !ok {
				index[tag] = len(refs)
				refs = append(refs, forge.Ref{Name: tag, Kind: forge.RefTag, SHA: sha})
			}
		}
	}
	return refs
}

// ResolveRef resolves a branch, then a tag, then a full SHA that some ref
// points at (ls-remote cannot prove an arbitrary commit exists).
func (p *Provider) ResolveRef(ctx context.Context, c *forge.Conn, repo forge.Repo, ref string) (slipway.Commit, error) {
	refs, err := p.ListRefs(ctx, c, repo)
	if err != nil {
		return slipway.Commit{}, err
	}
	for _, kind := range []forge.RefKind{forge.RefBranch, forge.RefTag} {
		for _, r := range refs {
			if r.Kind == kind && r.Name == ref {
				return slipway.Commit{SHA: r.SHA}, nil
			}
		}
	}
	for _, r := range refs {
		if r.SHA == ref {
			return slipway.Commit{SHA: r.SHA}, nil
		}
	}
	return slipway.Commit{}, slipway.Errorf(slipway.ECodeRefNotFound, "git: %s has no branch or tag %q", repo.FullName, ref)
}

// CloneCredentials returns the URL with the configured username and token
// or deploy key.
func (p *Provider) CloneCredentials(ctx context.Context, c *forge.Conn, repo forge.Repo) (forge.CloneCredentials, error) {
	u, err := repoURL(c)
	if err != nil {
		return forge.CloneCredentials{}, err
	}
	return p.creds(ctx, c, u)
}

// GenerateDeployKey makes a new Ed25519 deploy key for a connection over
// SSH (the method form lets callers discover the capability).
func (p *Provider) GenerateDeployKey() (privateOpenSSH, publicAuthorizedKey string, err error) {
	return GenerateDeployKey()
}
