package store_test

import (
	"context"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/store"
)

// TestHostClaims is a second organisation with the same names trying to
// take the first one's hosts through every store path that writes claims.
func TestHostClaims(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a := seed(t, s, "acme")
		b := seed(t, s, "bcme") // another tenant with the same application, environment and service names
		twin := slipway.Organisation{Name: "ACME"}
		must(t, s.CreateOrganisation(ctx, &twin))
		if a.org.HostLabel != "acme" || twin.HostLabel == a.org.HostLabel || !strings.HasPrefix(twin.HostLabel, "acme-") {
			t.Fatalf("host labels %q and %q: want acme and a distinct acme-…", a.org.HostLabel, twin.HostLabel)
		}

		// Both seeded domains are pending: not claims yet. A proves its own.
		pending, err := s.ListDomainVerifications(ctx, a.org.ID, a.svc.ID)
		must(t, err)
		if len(pending) != 1 || pending[0].Domain != "web-acme.example.test" || !strings.HasPrefix(pending[0].Token, "slipway-verify-") {
			t.Fatalf("A's pending domains: %+v", pending)
		}
		if _, err := s.GetHostClaim(ctx, "web-acme.example.test"); slipway.ErrorCodeOf(err) != slipway.ECodeNotFound {
			t.Errorf("a pending domain is a claim: %v", err)
		}
		// The HTTP proof is answered for the pending domain's own token only.
		pendingB, err := s.ListDomainVerifications(ctx, b.org.ID, b.svc.ID)
		must(t, err)
		for _, c := range []struct {
			domain, token string
			want          bool
		}{
			{"web-acme.example.test", pending[0].Token, true},
			{"web-bcme.example.test", pending[0].Token, false},
			{"web-acme.example.test", pendingB[0].Token, false},
			{"web-acme.example.test", "", false},
		} {
			if got, err := s.IsPendingDomainToken(ctx, c.domain, c.token); err != nil || got != c.want {
				t.Errorf("pending token of %s: %v %v, want %v", c.domain, got, err, c.want)
			}
		}
		must(t, s.VerifyDomain(ctx, a.org.ID, a.svc.ID, "web-acme.example.test"))
		if got, _ := s.IsPendingDomainToken(ctx, "web-acme.example.test", pending[0].Token); got {
			t.Error("a verified domain's token is still answered")
		}
		wantCode(t, s.VerifyDomain(ctx, a.org.ID, a.svc.ID, "web-acme.example.test"), slipway.ECodeNotFound, "verify a domain twice")

		hostA := "web.production.shop." + a.org.HostLabel + ".localhost"
		must(t, s.SetGeneratedHost(ctx, a.org.ID, a.svc.ID, slipway.HostGenerated, hostA))
		must(t, s.SetGeneratedHost(ctx, a.org.ID, a.svc.ID, slipway.HostGenerated, hostA)) // idempotent
		wantCode(t, s.SetGeneratedHost(ctx, b.org.ID, b.svc.ID, slipway.HostGenerated, hostA), slipway.ECodeHostTaken, "B claims A's generated host")
		wantCode(t, s.ClaimHost(ctx, slipway.HostClaim{Host: "web-acme.example.test", OrgID: b.org.ID, ServiceID: b.svc.ID, Kind: slipway.HostCustom}),
			slipway.ECodeHostTaken, "B claims A's custom domain")
		b.svc.Domains = []string{hostA}
		wantCode(t, s.UpdateService(ctx, &b.svc), slipway.ECodeHostTaken, "B adds A's generated host as a domain")
		// The refused update changed nothing of B's.
		if got, _ := s.GetService(ctx, b.org.ID, b.svc.ID); len(got.Domains) != 1 || got.Domains[0] != "web-bcme.example.test" {
			t.Errorf("B's domains after the refused update: %v, want its own unchanged", got.Domains)
		}
		claims, err := s.ListHostClaims(ctx, b.org.ID, b.svc.ID)
		must(t, err)
		for _, c := range claims {
			if c.Host == hostA {
				t.Errorf("B holds A's host after a refused update: %+v", c)
			}
		}
		// Nothing of A's is visible through B's organisation.
		if claims, _ := s.ListHostClaims(ctx, b.org.ID, a.svc.ID); len(claims) != 0 {
			t.Errorf("A's claims listed in B's organisation: %v", claims)
		}

		// A rename moves the generated claim; the old name is free again.
		renamed := "www.production.shop." + a.org.HostLabel + ".localhost"
		must(t, s.SetGeneratedHost(ctx, a.org.ID, a.svc.ID, slipway.HostGenerated, renamed))
		if _, err := s.GetHostClaim(ctx, hostA); slipway.ErrorCodeOf(err) != slipway.ECodeNotFound {
			t.Errorf("old generated host still claimed after rename: %v", err)
		}
		claims, err = s.ListHostClaims(ctx, a.org.ID, a.svc.ID)
		must(t, err)
		if len(claims) != 2 || claims[0].Host != renamed || claims[0].Kind != slipway.HostGenerated || claims[1].Kind != slipway.HostCustom {
			t.Errorf("A's claims after rename: %+v", claims)
		}

		// A pending domain blocks nobody: both ask for the same name, the
		// first to prove it holds it, the other's proof comes too late.
		a.svc.Domains = []string{"web-acme.example.test", "shared.example.test"}
		must(t, s.UpdateService(ctx, &a.svc))
		b.svc.Domains = []string{"web-bcme.example.test", "shared.example.test"}
		must(t, s.UpdateService(ctx, &b.svc))
		must(t, s.VerifyDomain(ctx, b.org.ID, b.svc.ID, "shared.example.test"))
		wantCode(t, s.VerifyDomain(ctx, a.org.ID, a.svc.ID, "shared.example.test"), slipway.ECodeHostTaken, "verify a domain another service verified first")
		if pending, _ := s.ListDomainVerifications(ctx, a.org.ID, a.svc.ID); len(pending) != 1 || pending[0].Domain != "shared.example.test" {
			t.Errorf("A's pending domains after losing the race: %+v (the refused verification must keep it pending)", pending)
		}

		// Removing a domain releases it for anyone, and drops its pending check.
		a.svc.Domains = nil
		must(t, s.UpdateService(ctx, &a.svc))
		if pending, _ := s.ListDomainVerifications(ctx, a.org.ID, a.svc.ID); len(pending) != 0 {
			t.Errorf("pending domains after removal: %+v", pending)
		}
		must(t, s.ClaimHost(ctx, slipway.HostClaim{Host: "web-acme.example.test", OrgID: b.org.ID, ServiceID: b.svc.ID, Kind: slipway.HostCustom}))

		// The host a Service had before claims goes to the oldest claimant only.
		prev := "web.production.shop.localhost"
		held, err := s.ClaimPreviousHost(ctx, a.org.ID, a.svc.ID, prev)
		must(t, err)
		again, err := s.ClaimPreviousHost(ctx, b.org.ID, b.svc.ID, prev)
		must(t, err)
		if !held || again {
			t.Errorf("previous host: first claim %v, second %v; want true, false", held, again)
		}

		// Deleting a Service releases everything it held.
		must(t, s.DeleteService(ctx, a.org.ID, a.svc.ID))
		for _, h := range []string{renamed, prev} {
			if _, err := s.GetHostClaim(ctx, h); slipway.ErrorCodeOf(err) != slipway.ECodeNotFound {
				t.Errorf("%s still claimed after its service was deleted: %v", h, err)
			}
		}
	})
}
