package service

import (
	"testing"
	"time"
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
