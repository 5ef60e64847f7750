package web_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/clientaddr"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
	"slipway.dev/slipway/internal/web"
)

// replica is a second dashboard on the same database, with its own
// store handle and use cases, as another `slipway serve` would be.
func (e *env) replica(t *testing.T, opts web.Options) *env {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	st, err := store.Open(ctx, "", e.dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys, err := secrets.LoadOrCreate(filepath.Join(e.dir, "master.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(st, keys, map[slipway.Provider]forge.Provider{}, noJobs{}, service.Config{PublicURL: "https://slipway.test", BaseDomain: "apps.test"}, logger)
	svc.SetClock(e.clock.Now)
	opts.Clock = e.clock.Now
	mux := http.NewServeMux()
	web.New(svc, logger, opts).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{t: t, svc: svc, store: st, srv: srv, clock: e.clock, boot: e.boot, dir: e.dir}
}

func (b *browser) signInFrom(addr, email, password string) answer {
	req, _ := http.NewRequest(http.MethodPost, b.e.srv.URL+"/login", strings.NewReader(url.Values{"email": {email}, "password": {password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if addr != "" {
		req.Header.Set("X-Forwarded-For", addr)
	}
	return b.do(req)
}

// TestSignInIsThrottledPerAccountAcrossReplicas: guessing one account's
// password on two replicas shares one count; past the allowance even the
// right password gets 429 with Retry-After, and once the wait is over the
// right password works again (no lasting lockout).
func TestSignInIsThrottledPerAccountAcrossReplicas(t *testing.T) {
	e := newEnv(t, web.Options{})
	other := e.replica(t, web.Options{})
	one, two := e.browser(), other.browser()
	for i := range 5 {
		b := one
		if i%2 == 1 {
			b = two
		}
		if a := b.signInFrom("", e.boot.Email, "guess-"+strconv.Itoa(i)); a.status != http.StatusUnauthorized {
			t.Fatalf("guess %d: status %d, want 401", i, a.status)
		}
	}
	for _, b := range []*browser{one, two} {
		a := b.signInFrom("", e.boot.Email, e.boot.Password)
		if a.status != http.StatusTooManyRequests {
			t.Fatalf("sixth attempt: status %d, want 429", a.status)
		}
		secs, err := strconv.Atoi(a.header.Get("Retry-After"))
		if err != nil || secs < 1 || secs > 30 {
			t.Errorf("Retry-After %q, want 1..30 seconds", a.header.Get("Retry-After"))
		}
		if !strings.Contains(a.body, "too many failed sign-ins") || a.header.Get("Set-Cookie") != "" {
			t.Errorf("429 page does not explain itself or set a cookie: %q", a.header.Get("Set-Cookie"))
		}
	}
	e.clock.Advance(31 * time.Second)
	if a := two.signInFrom("", e.boot.Email, e.boot.Password); a.status != http.StatusSeeOther {
		t.Fatalf("after the wait: status %d, want a sign-in", a.status)
	}
	// Success forgot the account's failures: one wrong guess is a plain 401.
	if a := one.signInFrom("", e.boot.Email, "again-wrong"); a.status != http.StatusUnauthorized {
		t.Errorf("after a success: status %d, want 401", a.status)
	}
}

// TestGuessingCannotLockTheOwnerOut: while someone guesses an account's
// password into its limit, the owner's browser, which signed in before,
// still signs in; a browser without that mark, or with another account's
// mark or a forged one, waits.
func TestGuessingCannotLockTheOwnerOut(t *testing.T) {
	e := newEnv(t, web.Options{})
	owner := e.browser()
	owner.signIn(e.boot.Email, e.boot.Password)
	if _, err := e.svc.AddMember(context.Background(), e.admin(), service.CreateUserInput{Email: "other@example.com", Password: "other-password"}); err != nil {
		t.Fatal(err)
	}
	otherAccount := e.browser()
	otherAccount.signIn("other@example.com", "other-password")

	attacker := e.browser()
	for i := range 8 {
		attacker.signInFrom("", e.boot.Email, "guess-"+strconv.Itoa(i))
	}
	if a := attacker.signInFrom("", e.boot.Email, e.boot.Password); a.status != http.StatusTooManyRequests {
		t.Fatalf("the guessing browser: status %d, want 429", a.status)
	}
	if a := otherAccount.signInFrom("", e.boot.Email, e.boot.Password); a.status != http.StatusTooManyRequests {
		t.Errorf("a browser known for another account: status %d, want 429", a.status)
	}
	forged := e.browser()
	u, _ := url.Parse(e.srv.URL)
	forged.http.Jar.SetCookies(u, []*http.Cookie{{Name: "slipway_device", Value: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}})
	if a := forged.signInFrom("", e.boot.Email, e.boot.Password); a.status != http.StatusTooManyRequests {
		t.Errorf("a forged device cookie: status %d, want 429", a.status)
	}
	if a := owner.signInFrom("", e.boot.Email, e.boot.Password); a.status != http.StatusSeeOther {
		t.Fatalf("the owner's browser: status %d, want a sign-in", a.status)
	}
}

// TestSignInIsThrottledPerClientAddress: spraying many accounts from one
// address is stopped, a forged X-Forwarded-For does not help while no
// proxy is trusted, and with --trusted-proxies the proxy's clients are
// told apart by the header (read from the right).
func TestSignInIsThrottledPerClientAddress(t *testing.T) {
	e := newEnv(t, web.Options{})
	b := e.browser()
	for i := range 20 {
		// A different forged client address on each request: ignored.
		if a := b.signInFrom("203.0.113."+strconv.Itoa(i), "user"+strconv.Itoa(i)+"@example.com", "guess"); a.status != http.StatusUnauthorized {
			t.Fatalf("spray %d: status %d, want 401", i, a.status)
		}
	}
	if a := b.signInFrom("198.51.100.1", e.boot.Email, e.boot.Password); a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Fatalf("after 20 failures from one address: status %d Retry-After %q, want 429", a.status, a.header.Get("Retry-After"))
	}

	proxied, err := clientaddr.Parse("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	p := newEnv(t, web.Options{ClientAddr: proxied})
	pb := p.browser()
	for i := range 20 {
		if a := pb.signInFrom("1.2.3.4, 203.0.113.7", "user"+strconv.Itoa(i)+"@example.com", "guess"); a.status != http.StatusUnauthorized {
			t.Fatalf("proxied spray %d: status %d", i, a.status)
		}
	}
	if a := pb.signInFrom("9.9.9.9, 203.0.113.7", p.boot.Email, p.boot.Password); a.status != http.StatusTooManyRequests {
		t.Errorf("the sprayer behind the proxy (changing only the part it writes itself): status %d, want 429", a.status)
	}
	if a := pb.signInFrom("203.0.113.8", p.boot.Email, p.boot.Password); a.status != http.StatusSeeOther {
		t.Errorf("another client behind the same proxy: status %d, want a sign-in", a.status)
	}
}

// TestAddingAnExistingUserIsAnInvitationTheyAccept: an Admin of one
// organisation "adds" the user of another; nothing is attached until that
// user, signed in, accepts; nobody else can accept for them; declining
// attaches nothing.
func TestAddingAnExistingUserIsAnInvitationTheyAccept(t *testing.T) {
	e := newEnv(t, web.Options{})
	ctx := context.Background()
	// The victim has an account of their own in organisation "default".
	if _, err := e.svc.AddMember(ctx, e.admin(), service.CreateUserInput{Email: "victim@example.com", Password: "victim-password", Role: slipway.RoleDeveloper}); err != nil {
		t.Fatal(err)
	}
	// An attacker signs up an organisation of their own and adds the victim.
	attackerUser := slipway.User{Email: "mallory@example.com"}
	if err := e.store.CreateUser(ctx, &attackerUser, ""); err != nil {
		t.Fatal(err)
	}
	evil, err := e.svc.CreateOrganisation(ctx, service.Actor{UserID: attackerUser.ID}, "evil")
	if err != nil {
		t.Fatal(err)
	}
	mallory, err := e.svc.ActorFor(ctx, evil.ID, attackerUser.ID)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.AddMember(ctx, mallory, service.CreateUserInput{Email: "Victim@Example.com", Password: "ignored-password", Role: slipway.RoleAdmin})
	if err != nil || res.Invitation == nil || res.Membership != nil {
		t.Fatalf("adding an existing user = %+v, %v; want an invitation only", res, err)
	}
	victim := e.browser()
	victim.signIn("victim@example.com", "victim-password")
	if a := victim.get("/orgs/" + evil.ID + "/apps"); a.status != http.StatusNotFound {
		t.Fatalf("before accepting, the victim is in the inviting organisation: status %d", a.status)
	}
	if _, err := e.svc.ActorFor(ctx, evil.ID, res.Invitation.UserID); err == nil {
		t.Fatal("the invitation attached a membership by itself")
	}
	// The victim's password was not changed by the "add".
	if _, _, err := e.svc.Login(ctx, service.SignIn{Email: "victim@example.com", Password: "ignored-password"}); err == nil {
		t.Fatal("the inviter's password was set on the existing account")
	}
	page := victim.get("/invitations")
	if page.status != http.StatusOK || !strings.Contains(page.body, "evil") || !strings.Contains(page.body, "/invitations/"+res.Invitation.ID+"/accept") {
		t.Fatalf("invitations page: status %d", page.status)
	}
	// Another signed-in user cannot answer it.
	admin := e.adminBrowser()
	csrf := admin.csrf("/invitations")
	if a := admin.post("/invitations/"+res.Invitation.ID+"/accept", url.Values{"csrf": {csrf}}); a.status != http.StatusNotFound {
		t.Fatalf("someone else accepting: status %d, want 404", a.status)
	}
	csrf = victim.csrf("/invitations")
	if a := victim.post("/invitations/"+res.Invitation.ID+"/accept", url.Values{"csrf": {csrf}}); a.status != http.StatusSeeOther || a.location != "/orgs/"+evil.ID+"/apps" {
		t.Fatalf("accept: status %d location %q", a.status, a.location)
	}
	if a := victim.get("/orgs/" + evil.ID + "/apps"); a.status != http.StatusOK {
		t.Fatalf("after accepting: status %d", a.status)
	}

	// Declining attaches nothing.
	res2, err := e.svc.AddMember(ctx, e.admin(), service.CreateUserInput{Email: "mallory@example.com"})
	if err != nil || res2.Invitation == nil {
		t.Fatalf("second invitation: %+v %v", res2, err)
	}
	if _, err := e.svc.AnswerInvitation(ctx, attackerUser.ID, res2.Invitation.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ActorFor(ctx, e.boot.OrgID, attackerUser.ID); err == nil {
		t.Error("a declined invitation attached a membership")
	}
}
