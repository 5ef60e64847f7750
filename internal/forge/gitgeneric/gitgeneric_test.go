package gitgeneric_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/gitgeneric"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/testenv/giteatest"
	"slipway.dev/slipway/internal/testenv/netnstest"
)

func TestMain(m *testing.M) { giteatest.Main(m) }

// local is the policy of these tests: their repositories are on loopback
// and in directories.
var local = netpolicy.Policy{AllowPrivate: true, AllowFiles: true}

func conn(u, user, token string) *forge.Conn {
	return connWith(local, u, user, token)
}

func connWith(p netpolicy.Policy, u, user, token string) *forge.Conn {
	return &forge.Conn{
		Integration: slipway.Integration{Provider: slipway.ProviderGit, Settings: map[string]string{gitgeneric.SettingURL: u}},
		Secret:      forge.Secret{Username: user, Token: token},
		Network:     p,
	}
}

func run(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestLocalFileRepo(t *testing.T) {
	dir := t.TempDir()
	run(t, dir, "init", "-q", "-b", "main", "src")
	src := filepath.Join(dir, "src")
	run(t, src, "commit", "-q", "--allow-empty", "-m", "one")
	sha := run(t, src, "rev-parse", "HEAD")
	run(t, src, "tag", "-a", "v1", "-m", "annotated")
	run(t, src, "tag", "light")
	run(t, src, "branch", "dev")

	p := gitgeneric.New()
	ctx := context.Background()
	c := conn("file://"+src, "", "")
	if _, err := p.Check(ctx, c); err != nil {
		t.Fatal(err)
	}
	page, err := p.ListRepos(ctx, c, forge.ListOptions{})
	if err != nil || len(page.Repos) != 1 || page.NextPage != 0 {
		t.Fatalf("ListRepos = %+v, %v", page, err)
	}
	repo := page.Repos[0]
	if repo.ID != gitgeneric.RepoID("file://"+src+"/") || repo.CloneURL != "file://"+src {
		t.Errorf("repo = %+v", repo)
	}
	if got, err := p.GetRepo(ctx, c, repo.ID); err != nil || got != repo {
		t.Errorf("GetRepo = %+v, %v", got, err)
	}
	if _, err := p.GetRepo(ctx, c, "other"); slipway.ErrorCodeOf(err) != slipway.ECodeRepoNotVisible {
		t.Errorf("GetRepo(other): %v", err)
	}
	refs, err := p.ListRefs(ctx, c, repo)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 4 {
		t.Errorf("refs = %+v", refs)
	}
	for _, r := range refs {
		if r.SHA != sha {
			t.Errorf("%s %s at %s, want %s (annotated tags peeled)", r.Kind, r.Name, r.SHA, sha)
		}
	}
	for _, ref := range []string{"main", "dev", "v1", "light", sha} {
		if cm, err := p.ResolveRef(ctx, c, repo, ref); err != nil || cm.SHA != sha {
			t.Errorf("ResolveRef(%s) = %+v, %v", ref, cm, err)
		}
	}
	if _, err := p.ResolveRef(ctx, c, repo, "nope"); slipway.ErrorCodeOf(err) != slipway.ECodeRefNotFound {
		t.Errorf("ResolveRef(nope): %v", err)
	}
	if _, err := p.Check(ctx, conn("file://"+dir+"/missing", "", "")); slipway.ErrorCodeOf(err) != slipway.ECodeRepoNotVisible {
		t.Errorf("missing repo: %v", err)
	}
}

func TestHTTPSWithTokenOnRealGitea(t *testing.T) {
	s := giteatest.Shared(t)
	user := giteatest.UniqueName("git")
	pw := s.CreateUser(t, user)
	s.CreateRepo(t, user, "private", true)
	token := s.CreateToken(t, user, pw, "clone", "read:repository")
	sha := s.PushCommit(t, user, pw, user+"/private", "main", map[string]string{"f": "1"}, "c")
	u := s.URL() + "/" + user + "/private.git"

	// A git wrapper first on PATH records every command line git is run with.
	bin := t.TempDir()
	log := filepath.Join(bin, "cmdlines")
	real, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " + log + "\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "git"), []byte(wrapper), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	p := gitgeneric.New()
	ctx := context.Background()
	c := conn(u, user, token)
	if _, err := p.Check(ctx, c); err != nil {
		t.Fatalf("Check with token: %v", err)
	}
	repo, err := p.GetRepo(ctx, c, gitgeneric.RepoID(u))
	if err != nil {
		t.Fatal(err)
	}
	if cm, err := p.ResolveRef(ctx, c, repo, "main"); err != nil || cm.SHA != sha {
		t.Errorf("ResolveRef(main) = %+v, %v", cm, err)
	}
	_, err = p.Check(ctx, conn(u, user, "wrong-token"))
	if slipway.ErrorCodeOf(err) != slipway.ECodeCredentialsInvalid {
		t.Errorf("wrong token: %v, want %s", err, slipway.ECodeCredentialsInvalid)
	}
	_, err = p.Check(ctx, conn(u, "", ""))
	if slipway.ErrorCodeOf(err) != slipway.ECodeCredentialsInvalid {
		t.Errorf("no token on a private repo: %v", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Error("token in error")
	}

	lines, err := os.ReadFile(log)
	if err != nil || len(lines) == 0 {
		t.Fatalf("git wrapper saw no command: %v", err)
	}
	if strings.Contains(string(lines), token) {
		t.Errorf("token on a git command line:\n%s", lines)
	}
	if !strings.Contains(string(lines), "ls-remote") {
		t.Errorf("unexpected command lines:\n%s", lines)
	}
	// And no helper file survives the call.
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), "gitcred-*", "askpass"))
	for _, m := range matches {
		if b, _ := os.ReadFile(m); strings.Contains(string(b), token) {
			t.Errorf("secret in surviving file %s", m)
		}
	}
}

func TestGenerateDeployKey(t *testing.T) {
	priv, pub, err := gitgeneric.GenerateDeployKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey([]byte(priv))
	if err != nil {
		t.Fatal(err)
	}
	parsed, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pub))
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Type() != ssh.KeyAlgoED25519 || string(parsed.Marshal()) != string(signer.PublicKey().Marshal()) {
		t.Errorf("public key %q does not match the private key", pub)
	}
}

// TestTenantURLsRefused connects the generic Git provider to URLs a tenant
// could use to make Slipway read its own disk or network. Every one is
// refused with a code and a fix, git never reaches the listener, and the
// error carries nothing the remote said. It runs in a network namespace
// holding only loopback and the metadata address, so a wrong answer
// cannot send a packet off the machine.
func TestTenantURLsRefused(t *testing.T) {
	if !netnstest.Run(t, "169.254.169.254/32") {
		return
	}
	dir := t.TempDir()
	run(t, dir, "init", "-q", "--bare", "secret.git")
	var hits atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, "http://127.0.0.1/", http.StatusFound)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	meta, err := net.Listen("tcp", "169.254.169.254:443")
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	go func() {
		for {
			c, err := meta.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			c.Close()
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	strict := netpolicy.Policy{}
	p := gitgeneric.New()
	for _, u := range []string{
		"file://" + dir + "/secret.git",
		dir + "/secret.git",
		"http://127.0.0.1:" + port + "/a/b.git",
		"http://[::ffff:127.0.0.1]:" + port + "/a/b.git",
		"http://2130706433:" + port + "/a/b.git",
		"https://2130706433:" + port + "/a/b.git",
		"https://localhost:" + port + "/a/b.git", // a name: refused by the proxy's dialer
		"https://169.254.169.254/latest/meta-data/",
		"http://169.254.169.254/latest/meta-data/",
		"ssh://git@localhost:" + port + "/a.git",
		"ext::sh -c touch% " + dir + "/pwned",
	} {
		_, err := p.Check(context.Background(), connWith(strict, u, "", ""))
		e, ok := netpolicy.Refusal(err)
		if !ok || e.Fix == "" {
			t.Errorf("%s: want address_not_allowed with a fix, got %v", u, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d connections reached a refused address", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Fatal("the ext:: transport ran a command")
	}
	// With --allow-private-networks the loopback server is reached: the
	// listener is real, and its (redirecting, non-git) answer is not
	// echoed into the error.
	_, err = p.Check(context.Background(), connWith(netpolicy.Policy{AllowPrivate: true}, "http://127.0.0.1:"+port+"/a/b.git", "", ""))
	if err == nil || hits.Load() == 0 {
		t.Fatalf("allowed loopback: err %v, hits %d", err, hits.Load())
	}
	if e, ok := slipway.AsError(err); !ok || strings.Contains(e.Message, "127.0.0.1/\"") || strings.Contains(e.Message, "redirect") {
		t.Errorf("remote text echoed: %v", err)
	}
}
