package service

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"slipway.dev/slipway"
)

// Sign-in throttling. Failed sign-ins are counted per account and per
// client address in the database, so every replica sees the same counts.
// Past a free allowance each further failure doubles a wait (capped), and
// attempts during the wait are refused before any password is hashed, so
// guessing is slow and bcrypt is no CPU lever. A wait always ends: an
// account is never locked out for good: failures older than
// signInForgetAfter are forgotten, and a browser that signed in to the
// account before is not held back by the account's count at all.
const (
	accountFreeFailures = 5  // per e-mail address
	addressFreeFailures = 20 // per client address: several people may share one
	signInFirstWait     = 30 * time.Second
	signInMaxWait       = 15 * time.Minute
	signInForgetAfter   = time.Hour
)

// signInWait is how long after its last failure a key with n failures must
// wait before its next attempt.
func signInWait(n, free int) time.Duration {
	if n < free {
		return 0
	}
	exp := n - free
	if exp > 10 {
		return signInMaxWait
	}
	wait := time.Duration(float64(signInFirstWait) * math.Pow(2, float64(exp)))
	return min(wait, signInMaxWait)
}

// maxEmailLength bounds the account part of a throttle key (RFC 5321's
// limit on an address).
const maxEmailLength = 320

type throttleKey struct {
	key  string
	free int
}

func signInKeys(email, clientAddr string) []throttleKey {
	if len(email) > maxEmailLength {
		email = email[:maxEmailLength] // no account has a longer address; keep the key bounded
	}
	keys := []throttleKey{{"account:" + email, accountFreeFailures}}
	if clientAddr != "" {
		keys = append(keys, throttleKey{"address:" + addressKey(clientAddr), addressFreeFailures})
	}
	return keys
}

// addressKey is what one client's failures are counted under: its IPv4
// address, or its IPv6 /64, since one host usually holds a whole /64 and
// could otherwise take a fresh address for every guess.
func addressKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap()
	if a.Is6() {
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.String()
}

// RateLimited is the error of a refused attempt: ECodeRateLimited with the
// seconds to wait in Details["retry_after"], which the edges send as
// Retry-After.
func RateLimited(wait time.Duration) *slipway.Error {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	e := slipway.Errorf(slipway.ECodeRateLimited, "too many failed sign-ins; try again in %d seconds", secs).
		WithFix("wait, then sign in with the right password; the wait ends by itself")
	e.Details = map[string]string{"retry_after": strconv.Itoa(secs)}
	return e
}

// SignIn is one password sign-in attempt. ClientAddr is the client's
// address as the edge determined it (see internal/clientaddr);
// DeviceToken is what an earlier successful sign-in from this browser
// returned, if any.
type SignIn struct {
	Email, Password, ClientAddr, DeviceToken string
}

// Login checks an e-mail and password and returns the user and a device
// token for the browser to keep. Attempts are throttled per account and
// per client address; a browser holding a device token of the account is
// exempt from the account's limit (not the address's), so someone
// guessing a password cannot keep its owner out.
func (s *Service) Login(ctx context.Context, in SignIn) (slipway.User, string, error) {
	email := strings.ToLower(strings.TrimSpace(in.Email))
	keys := signInKeys(email, in.ClientAddr)
	now := s.now().UTC()
	known := s.knownDevice(email, in.DeviceToken)
	for i, k := range keys {
		if i == 0 && known {
			continue
		}
		n, last, err := s.store.SignInFailures(ctx, k.key)
		if err != nil {
			return slipway.User{}, "", err
		}
		if until := last.Add(signInWait(n, k.free)); n > 0 && now.Before(until) {
			return slipway.User{}, "", RateLimited(until.Sub(now))
		}
	}
	u, err := s.checkPassword(ctx, email, in.Password)
	if err != nil {
		for _, k := range keys {
			if _, rerr := s.store.RecordSignInFailure(ctx, k.key, now, now.Add(-signInForgetAfter)); rerr != nil {
				return slipway.User{}, "", rerr
			}
		}
		return slipway.User{}, "", err
	}
	// Success clears the account's count, not the address's: an attacker
	// signing in to an account of their own between guesses must not
	// reset the limit on their address.
	if err := s.store.ClearSignInFailures(ctx, keys[0].key); err != nil {
		return slipway.User{}, "", fmt.Errorf("sign in: %w", err)
	}
	device, err := s.deviceToken(email)
	if err != nil {
		return slipway.User{}, "", err
	}
	return u, device, nil
}

// deviceTTL is how long a browser stays known after a sign-in.
const deviceTTL = 30 * 24 * time.Hour

var deviceAAD = []byte("sign-in device")

type deviceClaim struct {
	Email    string `json:"e"`
	IssuedAt int64  `json:"t"`
}

// deviceToken seals the account and the time of a successful sign-in
// with the master keyring, so only this installation can make one.
func (s *Service) deviceToken(email string) (string, error) {
	raw, _ := json.Marshal(deviceClaim{Email: email, IssuedAt: s.now().Unix()})
	sealed, err := s.keys.Seal(raw, deviceAAD)
	if err != nil {
		return "", fmt.Errorf("device token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

func (s *Service) knownDevice(email, token string) bool {
	if token == "" || len(token) > 1024 {
		return false
	}
	sealed, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return false
	}
	raw, err := s.keys.Open(sealed, deviceAAD)
	if err != nil {
		return false
	}
	var c deviceClaim
	if json.Unmarshal(raw, &c) != nil || c.Email != email {
		return false
	}
	age := s.now().Sub(time.Unix(c.IssuedAt, 0))
	return age >= -time.Minute && age < deviceTTL
}

func (s *Service) checkPassword(ctx context.Context, email, password string) (slipway.User, error) {
	u, hash, err := s.store.GetUserByEmail(ctx, email)
	if err != nil {
		if slipway.ErrorCodeOf(err) != slipway.ECodeNotFound {
			return slipway.User{}, err
		}
		// Spend the same time as a real check so response time does not
		// reveal whether the address exists.
		_ = bcrypt.CompareHashAndPassword([]byte("$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z1ZxrlNgfYuShwq2aw5PjFK6"), []byte(password))
		return slipway.User{}, slipway.Errorf(slipway.ECodeUnauthenticated, "wrong e-mail or password")
	}
	if hash == "" || bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return slipway.User{}, slipway.Errorf(slipway.ECodeUnauthenticated, "wrong e-mail or password")
	}
	return u, nil
}

// ForgetSignInFailures deletes failure counts nobody has added to for
// signInForgetAfter; they no longer limit anything.
func (s *Service) ForgetSignInFailures(ctx context.Context) error {
	_, err := s.store.DeleteSignInFailuresBefore(ctx, s.now().Add(-signInForgetAfter))
	return err
}
