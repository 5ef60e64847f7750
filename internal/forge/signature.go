package forge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// SignHMACSHA256 returns the hex HMAC-SHA256 of body under secret: the
// signature GitHub, Gitea and Bitbucket put on a webhook delivery (GitHub
// and Bitbucket behind a "sha256=" prefix).
func SignHMACSHA256(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// ValidHMACSHA256 reports whether sigHex is the hex HMAC-SHA256 of the raw
// body under secret, compared in constant time. An empty secret never
// verifies: an unconfigured hook must not accept anything.
func ValidHMACSHA256(sigHex string, body []byte, secret string) bool {
	if secret == "" {
		return false
	}
	got, err := hex.DecodeString(sigHex)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}
