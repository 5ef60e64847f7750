package forge_test

import (
	"testing"

	"slipway.dev/slipway/internal/forge"
)

func TestHMACSHA256(t *testing.T) {
	body := []byte(`{"ref":"refs/heads/main"}`)
	sig := forge.SignHMACSHA256(body, "s3cret")
	// Known answer, so a change of algorithm or encoding shows.
	const want = "232a5e067b6a5aa567ed5a1d21a0dffaf6ef0eeecb6bd9bcf43b3d5ef3fc4f43"
	if sig != want {
		t.Fatalf("SignHMACSHA256 = %q, want %q", sig, want)
	}
	cases := []struct {
		name   string
		sig    string
		body   []byte
		secret string
		ok     bool
	}{
		{"matching", sig, body, "s3cret", true},
		{"other secret", sig, body, "other", false},
		{"other body", sig, []byte(`{}`), "s3cret", false},
		{"empty secret never verifies", forge.SignHMACSHA256(body, ""), body, "", false},
		{"not hex", "zz" + sig[2:], body, "s3cret", false},
		{"empty signature", "", body, "s3cret", false},
		{"truncated", sig[:62], body, "s3cret", false},
	}
	for _, c := range cases {
		if got := forge.ValidHMACSHA256(c.sig, c.body, c.secret); got != c.ok {
			t.Errorf("%s: ValidHMACSHA256 = %v, want %v", c.name, got, c.ok)
		}
	}
}
