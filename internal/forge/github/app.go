package github

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	gh "github.com/google/go-github/v88/github"

	"slipway.dev/slipway"
)

// App is a GitHub App's credentials on one GitHub host. It signs the short
// JWTs that authenticate as the App itself (installation lookups, token
// mints). Its String method hides the key and secret.
type App struct {
	ID            int64
	APIBase       string // https://api.github.com/ or {ghes}/api/v3/
	WebhookSecret string
	key           *rsa.PrivateKey
}

// NewApp parses the App's PEM private key. apiBase may be any form APIBase
// accepts (empty for github.com).
func NewApp(id int64, privateKeyPEM []byte, webhookSecret, apiBase string) (*App, error) {
	if id <= 0 {
		return nil, slipway.Errorf(slipway.ECodeCredentialsInvalid, "GitHub App id %d is not valid", id).
			WithFix("use the numeric App ID shown in the App's settings")
	}
	base, err := APIBase(apiBase)
	if err != nil {
		return nil, err
	}
	key, err := jwt.ParseRSAPrivateKeyFromPEM(privateKeyPEM)
	if err != nil {
		// The parse error never quotes the key, but say nothing of its content anyway.
		return nil, slipway.Errorf(slipway.ECodeCredentialsInvalid, "the GitHub App private key is not an RSA PEM key").
			WithFix("paste the .pem file GitHub generated (App settings → Private keys → Generate a private key)")
	}
	return &App{ID: id, APIBase: base, WebhookSecret: webhookSecret, key: key}, nil
}

// String keeps the key and secret out of fmt output.
func (a *App) String() string { return fmt.Sprintf("github.App{ID: %d, APIBase: %s}", a.ID, a.APIBase) }

// JWT returns an RS256 App JWT. iat is 60 seconds in the past to absorb
// clock drift between this server and GitHub; exp is 10 minutes after iat,
// the longest GitHub accepts, so the JWT is at most 9 minutes in the future.
func (a *App) JWT(now time.Time) (string, error) {
	iat := now.Add(-60 * time.Second).Truncate(time.Second)
	claims := jwt.RegisteredClaims{
		Issuer:    strconv.FormatInt(a.ID, 10),
		IssuedAt:  jwt.NewNumericDate(iat),
		ExpiresAt: jwt.NewNumericDate(iat.Add(10 * time.Minute)),
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(a.key)
	if err != nil {
		return "", fmt.Errorf("github: sign App JWT: %w", err)
	}
	return signed, nil
}

// client returns a go-github client authenticated as the App (JWT).
func (a *App) client(hc *http.Client, now func() time.Time) (*gh.Client, error) {
	return newClient(hc, a.APIBase, func(context.Context) (string, error) { return a.JWT(now()) })
}

// keyFingerprint identifies a private key without keeping it as a map key.
func keyFingerprint(pem string) [32]byte { return sha256.Sum256([]byte(pem)) }
