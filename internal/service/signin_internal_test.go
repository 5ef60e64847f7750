package service

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"slipway.dev/slipway/internal/secrets"
)

func TestSignInWaitGrowsAndStops(t *testing.T) {
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{0, 0}, {4, 0}, {5, 30 * time.Second}, {6, time.Minute}, {9, 8 * time.Minute}, {10, signInMaxWait}, {1000, signInMaxWait}} {
		if got := signInWait(c.n, accountFreeFailures); got != c.want {
			t.Errorf("signInWait(%d) = %v, want %v", c.n, got, c.want)
		}
	}
}

func TestSignInAddressKeys(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.7":              "192.0.2.7",
		"::ffff:192.0.2.7":       "192.0.2.7",
		"2001:db8:1:2:3:4:5:6":   "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":   "2001:db8:1:2::/64", // same /64: same count
		"2001:db8:1:3::1":        "2001:db8:1:3::/64",
		"not-an-address-at-all!": "not-an-address-at-all!",
	} {
		if got := addressKey(addr); got != want {
			t.Errorf("addressKey(%q) = %q, want %q", addr, got, want)
		}
	}
}

func deviceService(t testing.TB) *Service {
	t.Helper()
	keys, err := secrets.LoadOrCreate(filepath.Join(t.TempDir(), "master.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	return New(nil, keys, nil, nil, Config{}, slog.New(slog.DiscardHandler))
}

func TestDeviceTokens(t *testing.T) {
	s := deviceService(t)
	tok, err := s.deviceToken("owner@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !s.knownDevice("owner@example.com", tok) {
		t.Fatal("a fresh device token is not known")
	}
	if s.knownDevice("other@example.com", tok) {
		t.Error("a device token works for another account")
	}
	if deviceService(t).knownDevice("owner@example.com", tok) {
		t.Error("another installation's key accepts the token")
	}
	start := time.Now()
	s.SetClock(func() time.Time { return start.Add(deviceTTL + time.Hour) })
	if s.knownDevice("owner@example.com", tok) {
		t.Error("an expired device token is still known")
	}
}

// FuzzDeviceToken: a cookie value from the browser is never a known
// device unless this installation sealed it for that account.
func FuzzDeviceToken(f *testing.F) {
	s := deviceService(f)
	good, _ := s.deviceToken("owner@example.com")
	goodBytes, _ := base64.RawURLEncoding.DecodeString(good)
	f.Add(good)
	f.Add("")
	f.Add("AAAA")
	f.Add(good[:len(good)-2] + "AA")
	f.Fuzz(func(t *testing.T, cookie string) {
		// The same sealed bytes in another base64 spelling are the same
		// token, not a forgery.
		same, err := base64.RawURLEncoding.DecodeString(cookie)
		if s.knownDevice("owner@example.com", cookie) && (err != nil || !bytes.Equal(same, goodBytes)) {
			t.Fatalf("forged device cookie %q accepted", cookie)
		}
	})
}
