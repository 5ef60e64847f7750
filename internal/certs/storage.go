package certs

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/store"
)

// dbStorage is certmagic's storage in Slipway's database: every value is
// sealed with the master keyring (private keys and ACME account keys are
// credentials), bound to its key so a value copied to another key does
// not open. Locks are rows with a lease that the holder keeps renewing;
// a replica that died lets its lease lapse and another takes over.
type dbStorage struct {
	st     *store.Store
	keys   *secrets.Keyring
	holder string // this process, distinct per replica
	lease  time.Duration
	now    func() time.Time

	mu      sync.Mutex
	renewal map[string]context.CancelFunc // held lock → stops its lease renewal
}

var (
	_ certmagic.Storage          = (*dbStorage)(nil)
	_ certmagic.TryLocker        = (*dbStorage)(nil)
	_ certmagic.LockLeaseRenewer = (*dbStorage)(nil)
)

func newDBStorage(st *store.Store, keys *secrets.Keyring, now func() time.Time) *dbStorage {
	return &dbStorage{st: st, keys: keys, holder: slipway.NewID("replica"), lease: 2 * time.Minute, now: now,
		renewal: map[string]context.CancelFunc{}}
}

func aad(key string) []byte { return []byte("tls-storage:" + key) }

func (s *dbStorage) Store(ctx context.Context, key string, value []byte) error {
	sealed, err := s.keys.Seal(value, aad(key))
	if err != nil {
		return fmt.Errorf("seal %s: %w", key, err)
	}
	return s.st.PutTLS(ctx, key, sealed, s.now())
}

func (s *dbStorage) Load(ctx context.Context, key string) ([]byte, error) {
	sealed, _, err := s.st.GetTLS(ctx, key)
	if slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
		return nil, fs.ErrNotExist // certmagic tells "absent" from "failed" by this
	}
	if err != nil {
		return nil, err
	}
	value, err := s.keys.Open(sealed, aad(key))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", key, err)
	}
	return value, nil
}

func (s *dbStorage) Delete(ctx context.Context, key string) error { return s.st.DeleteTLS(ctx, key) }

func (s *dbStorage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List lists the keys below path: every key when recursive, else the
// direct children (files and directories).
func (s *dbStorage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	entries, err := s.st.ListTLS(ctx, path)
	if err != nil {
		return nil, err
	}
	prefix := path
	if prefix != "" {
		prefix += "/"
	}
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, e := range entries {
		rest := strings.TrimPrefix(e.Key, prefix)
		parts := strings.Split(rest, "/")
		if !recursive {
			add(prefix + parts[0])
			continue
		}
		for i := 1; i <= len(parts); i++ {
			add(prefix + strings.Join(parts[:i], "/"))
		}
	}
	if len(out) == 0 {
		return nil, fs.ErrNotExist
	}
	return out, nil
}

func (s *dbStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	sealed, modified, err := s.st.GetTLS(ctx, key)
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: modified, Size: int64(len(sealed)), IsTerminal: true}, nil
	}
	if slipway.ErrorCodeOf(err) != slipway.ECodeNotFound {
		return certmagic.KeyInfo{}, err
	}
	below, err := s.st.ListTLS(ctx, key)
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if len(below) == 0 {
		return certmagic.KeyInfo{}, fs.ErrNotExist
	}
	return certmagic.KeyInfo{Key: key, Modified: below[0].Modified, IsTerminal: false}, nil
}

// Lock waits for the named lock, polling: ACME orders take seconds, and a
// poll keeps every replica on plain SQL that both databases speak.
func (s *dbStorage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for lock %s: %w", name, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// TryLock takes the lock if it is free or its lease lapsed, and keeps its
// lease renewed until Unlock.
func (s *dbStorage) TryLock(ctx context.Context, name string) (bool, error) {
	now := s.now()
	ok, err := s.st.TryTLSLock(ctx, name, s.holder, now, now.Add(s.lease))
	if err != nil || !ok {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, renewing := s.renewal[name]; !renewing {
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		s.renewal[name] = cancel
		go s.keepLease(rctx, name)
	}
	return true, nil
}

func (s *dbStorage) keepLease(ctx context.Context, name string) {
	t := time.NewTicker(s.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = s.RenewLockLease(ctx, name, s.lease)
		}
	}
}

// RenewLockLease extends a lock this process holds.
func (s *dbStorage) RenewLockLease(ctx context.Context, name string, lease time.Duration) error {
	now := s.now()
	ok, err := s.st.TryTLSLock(ctx, name, s.holder, now, now.Add(lease))
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("lock %s is held by another replica", name)
	}
	return nil
}

func (s *dbStorage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	if cancel, ok := s.renewal[name]; ok {
		cancel()
		delete(s.renewal, name)
	}
	s.mu.Unlock()
	return s.st.ReleaseTLSLock(context.WithoutCancel(ctx), name, s.holder)
}

func (s *dbStorage) String() string { return "slipway database" }
