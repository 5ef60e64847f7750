package store_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/store"
)

func TestSignInFailuresCountAcrossWriters(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		t0 := time.Now().UTC().Truncate(time.Second)
		long := t0.Add(-time.Hour)
		for i := 1; i <= 3; i++ {
			n, err := s.RecordSignInFailure(ctx, "account:a@example.test", t0, long)
			must(t, err)
			if n != i {
				t.Fatalf("failure %d counted as %d", i, n)
			}
		}
		n, last, err := s.SignInFailures(ctx, "account:a@example.test")
		must(t, err)
		if n != 3 || !last.Equal(t0) {
			t.Errorf("failures = %d at %v, want 3 at %v", n, last, t0)
		}
		// A failure after the forget horizon starts again at one: old
		// failures never add up to a lockout.
		if n, err := s.RecordSignInFailure(ctx, "account:a@example.test", t0.Add(2*time.Hour), t0.Add(time.Hour)); err != nil || n != 1 {
			t.Errorf("failure after the horizon counted %d (%v), want 1", n, err)
		}
		// Replicas recording at once lose no count (one upsert statement).
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.RecordSignInFailure(ctx, "address:192.0.2.1", t0, long); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n, _, _ := s.SignInFailures(ctx, "address:192.0.2.1"); n != 8 {
			t.Errorf("8 concurrent failures counted as %d", n)
		}
		must(t, s.ClearSignInFailures(ctx, "address:192.0.2.1"))
		if n, _, _ := s.SignInFailures(ctx, "address:192.0.2.1"); n != 0 {
			t.Errorf("cleared key still has %d failures", n)
		}
		del, err := s.DeleteSignInFailuresBefore(ctx, t0.Add(3*time.Hour))
		must(t, err)
		if del != 1 {
			t.Errorf("deleted %d old keys, want 1", del)
		}
	})
}

func TestInvitations(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a, b := seed(t, s, "acme"), seed(t, s, "bolt")
		inv := slipway.Invitation{OrgID: a.org.ID, UserID: b.user.ID, RoleID: a.admin.ID, InvitedBy: a.user.ID}
		must(t, s.CreateInvitation(ctx, &inv))
		wantCode(t, s.CreateInvitation(ctx, &slipway.Invitation{OrgID: a.org.ID, UserID: b.user.ID, RoleID: a.admin.ID}), slipway.ECodeConflict, "second invitation")
		wantCode(t, s.CreateInvitation(ctx, &slipway.Invitation{OrgID: a.org.ID, UserID: a.user.ID, RoleID: a.admin.ID}), slipway.ECodeConflict, "inviting a member")
		// A role of another organisation cannot be offered.
		wantCode(t, s.CreateInvitation(ctx, &slipway.Invitation{OrgID: b.org.ID, UserID: a.user.ID, RoleID: a.admin.ID}), slipway.ECodeNotFound, "foreign role")

		// The invitation attaches nothing by itself.
		_, err := s.GetMembership(ctx, a.org.ID, b.user.ID)
		wantCode(t, err, slipway.ECodeNotFound, "membership before accepting")
		list, err := s.ListInvitationsForUser(ctx, b.user.ID)
		must(t, err)
		if len(list) != 1 || list[0].ID != inv.ID || list[0].OrgName != "acme" || list[0].RoleName != slipway.RoleAdmin {
			t.Fatalf("invitations of the invited user = %+v", list)
		}
		if mine, _ := s.ListInvitationsForUser(ctx, a.user.ID); len(mine) != 0 {
			t.Errorf("the inviter sees %d invitations of their own", len(mine))
		}
		// Only the invited user can answer it.
		_, err = s.AnswerInvitation(ctx, a.user.ID, inv.ID, true)
		wantCode(t, err, slipway.ECodeNotFound, "someone else accepting")
		got, err := s.AnswerInvitation(ctx, b.user.ID, inv.ID, true)
		must(t, err)
		if got.OrgID != a.org.ID {
			t.Errorf("accepted invitation = %+v", got)
		}
		m, err := s.GetMembership(ctx, a.org.ID, b.user.ID)
		must(t, err)
		if m.RoleID != a.admin.ID {
			t.Errorf("membership role %q, want %q", m.RoleID, a.admin.ID)
		}
		_, err = s.AnswerInvitation(ctx, b.user.ID, inv.ID, true)
		wantCode(t, err, slipway.ECodeNotFound, "accepting twice")

		decl := slipway.Invitation{OrgID: b.org.ID, UserID: a.user.ID, RoleID: b.admin.ID}
		must(t, s.CreateInvitation(ctx, &decl))
		if _, err := s.AnswerInvitation(ctx, a.user.ID, decl.ID, false); err != nil {
			t.Fatal(err)
		}
		_, err = s.GetMembership(ctx, b.org.ID, a.user.ID)
		wantCode(t, err, slipway.ECodeNotFound, "membership after declining")
		wantCode(t, s.DeleteInvitation(ctx, b.org.ID, decl.ID), slipway.ECodeNotFound, "withdrawing a declined invitation")

		// An organisation with a pending invitation can still be deleted,
		// and the invitation goes with it.
		pending := slipway.Invitation{OrgID: b.org.ID, UserID: a.user.ID, RoleID: b.admin.ID}
		must(t, s.CreateInvitation(ctx, &pending))
		must(t, s.DeleteOrganisation(ctx, b.org.ID))
		if left, _ := s.ListInvitationsForUser(ctx, a.user.ID); len(left) != 0 {
			t.Errorf("%d invitations of a deleted organisation remain", len(left))
		}
	})
}

func TestIntegrationRefreshClaim(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f, other := seed(t, s, "acme"), seed(t, s, "bolt")
		now := time.Now()
		ok, err := s.ClaimIntegrationRefresh(ctx, f.org.ID, f.integ.ID, "one", now, now.Add(time.Minute))
		must(t, err)
		if !ok {
			t.Fatal("first claim refused")
		}
		if ok, _ := s.ClaimIntegrationRefresh(ctx, f.org.ID, f.integ.ID, "two", now, now.Add(time.Minute)); ok {
			t.Error("a second claim was granted while the first is live")
		}
		if ok, _ := s.ClaimIntegrationRefresh(ctx, other.org.ID, f.integ.ID, "two", now.Add(time.Hour), now.Add(2*time.Hour)); ok {
			t.Error("another organisation claimed the integration")
		}
		// An expired claim can be taken over; its old holder then writes nothing.
		later := now.Add(2 * time.Minute)
		if ok, _ := s.ClaimIntegrationRefresh(ctx, f.org.ID, f.integ.ID, "two", later, later.Add(time.Minute)); !ok {
			t.Fatal("an expired claim was not taken over")
		}
		wantCode(t, s.FinishIntegrationRefresh(ctx, f.org.ID, f.integ.ID, "one", []byte("stale")), slipway.ECodeConflict, "finishing a lost claim")
		must(t, s.FinishIntegrationRefresh(ctx, f.org.ID, f.integ.ID, "two", []byte("fresh")))
		sec, err := s.GetIntegrationSecret(ctx, f.org.ID, f.integ.ID)
		must(t, err)
		if string(sec) != "fresh" {
			t.Errorf("secret = %q, want the claim holder's", sec)
		}
		if ok, _ := s.ClaimIntegrationRefresh(ctx, f.org.ID, f.integ.ID, "three", now, now.Add(time.Minute)); !ok {
			t.Error("a released claim cannot be taken again")
		}
		must(t, s.FinishIntegrationRefresh(ctx, f.org.ID, f.integ.ID, "three", nil))
		if sec, _ := s.GetIntegrationSecret(ctx, f.org.ID, f.integ.ID); string(sec) != "fresh" {
			t.Errorf("releasing without a credential changed the secret to %q", sec)
		}
	})
}

func TestInstallationAdminAndTokenLookup(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a, b := seed(t, s, "acme"), seed(t, s, "bolt")
		if admin, err := s.IsInstallationAdmin(ctx, a.user.ID); err != nil || admin {
			t.Errorf("new user is installation admin: %v %v", admin, err)
		}
		must(t, s.SetInstallationAdmin(ctx, a.user.ID, true))
		if admin, _ := s.IsInstallationAdmin(ctx, a.user.ID); !admin {
			t.Error("installation admin not recorded")
		}
		if admin, _ := s.IsInstallationAdmin(ctx, "usr_missing"); admin {
			t.Error("an unknown user is installation admin")
		}
		tok := slipway.APIToken{OrgID: a.org.ID, UserID: a.user.ID, Name: "ci"}
		must(t, s.CreateAPIToken(ctx, &tok, []byte("secret-a")))
		got, err := s.GetAPIToken(ctx, a.org.ID, tok.ID)
		must(t, err)
		if got.UserID != a.user.ID {
			t.Errorf("token = %+v", got)
		}
		_, err = s.GetAPIToken(ctx, b.org.ID, tok.ID)
		wantCode(t, err, slipway.ECodeNotFound, "another organisation's token")
	})
}

// TestUpgradeMakesTheFirstUserInstallationAdmin: an installation older
// than the role gets it for its first user (the first-start
// administrator), and for no one else.
func TestUpgradeMakesTheFirstUserInstallationAdmin(t *testing.T) {
	for _, dialect := range []string{store.DialectSQLite, store.DialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			databaseURL, dataDir := dialectURL(t, dialect)
			old, err := store.OpenAtVersion(ctx, databaseURL, dataDir, 6)
			must(t, err)
			for i, id := range []string{"usr_first", "usr_second"} {
				_, err := old.DB().ExecContext(ctx, rebindFor(dialect, `INSERT INTO users (id, email, created_at) VALUES (?, ?, ?)`),
					id, id+"@example.test", timeAt(dialect, time.Now().Add(time.Duration(i)*time.Second)))
				must(t, err)
			}
			old.Close()
			s, err := store.Open(ctx, databaseURL, dataDir, slog.New(slog.DiscardHandler))
			must(t, err)
			defer s.Close()
			for id, want := range map[string]bool{"usr_first": true, "usr_second": false} {
				if got, err := s.IsInstallationAdmin(ctx, id); err != nil || got != want {
					t.Errorf("%s installation admin = %v (%v), want %v", id, got, err, want)
				}
			}
		})
	}
}

func timeAt(dialect string, t time.Time) any {
	if dialect == store.DialectPostgres {
		return t.UTC()
	}
	return t.UnixNano()
}
