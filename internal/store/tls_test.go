package store_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/store"
)

// TestTLSStorage covers what the ACME client relies on: keys overwrite,
// a delete takes its whole subtree and nothing beside it (a name that
// merely starts the same stays), and a lock has one holder until it
// expires.
func TestTLSStorage(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now()
		must(t, s.PutTLS(ctx, "certificates/ca/a.example/a.example.crt", []byte("one"), now))
		must(t, s.PutTLS(ctx, "certificates/ca/a.example/a.example.crt", []byte("two"), now))
		must(t, s.PutTLS(ctx, "certificates/ca/a.example/a.example.key", []byte("key"), now))
		must(t, s.PutTLS(ctx, "certificates/ca/a.example2/a.example2.crt", []byte("other"), now))
		v, _, err := s.GetTLS(ctx, "certificates/ca/a.example/a.example.crt")
		must(t, err)
		if !bytes.Equal(v, []byte("two")) {
			t.Fatalf("value %q, want the second write", v)
		}
		list, err := s.ListTLS(ctx, "certificates/ca")
		must(t, err)
		if len(list) != 3 || list[0].Size != 3 {
			t.Fatalf("list: %+v", list)
		}
		must(t, s.DeleteTLS(ctx, "certificates/ca/a.example"))
		if _, _, err := s.GetTLS(ctx, "certificates/ca/a.example/a.example.key"); slipway.ErrorCodeOf(err) != slipway.ECodeNotFound {
			t.Fatalf("deleted subtree still there: %v", err)
		}
		if _, _, err := s.GetTLS(ctx, "certificates/ca/a.example2/a.example2.crt"); err != nil {
			t.Fatalf("a sibling with the same prefix was deleted: %v", err)
		}

		got, err := s.TryTLSLock(ctx, "issue_cert_a.example", "r1", now, now.Add(time.Minute))
		must(t, err)
		other, err := s.TryTLSLock(ctx, "issue_cert_a.example", "r2", now, now.Add(time.Minute))
		must(t, err)
		if !got || other {
			t.Fatalf("first lock %v, second holder %v: want one holder", got, other)
		}
		must(t, s.ReleaseTLSLock(ctx, "issue_cert_a.example", "r2")) // not r2's: stays
		if again, _ := s.TryTLSLock(ctx, "issue_cert_a.example", "r2", now, now.Add(time.Minute)); again {
			t.Fatal("another holder's release freed the lock")
		}
		later := now.Add(2 * time.Minute)
		if took, _ := s.TryTLSLock(ctx, "issue_cert_a.example", "r2", later, later.Add(time.Minute)); !took {
			t.Fatal("an expired lock was not taken over")
		}

		exp := now.Add(90 * 24 * time.Hour).Truncate(time.Second)
		must(t, s.PutCertificateState(ctx, store.CertificateState{Host: "a.example", State: "issued", NotAfter: &exp, UpdatedAt: now}))
		must(t, s.PutCertificateState(ctx, store.CertificateState{Host: "a.example", State: "failed", LastError: "down", UpdatedAt: now}))
		states, err := s.ListCertificateStates(ctx)
		must(t, err)
		if len(states) != 1 || states[0].State != "failed" || states[0].NotAfter == nil || !states[0].NotAfter.Equal(exp) {
			t.Fatalf("states: %+v", states)
		}
	})
}
