package cli

import "testing"

func TestDatabaseURLHasPassword(t *testing.T) {
	for s, want := range map[string]bool{
		"postgres://app:s3cret@127.0.0.1:5432/slipway":                true,
		"postgres://app:@127.0.0.1/slipway":                           true, // an empty password is still the password field
		"postgresql://app@127.0.0.1/slipway?password=s3cret":          true,
		"postgres://app@127.0.0.1/slipway?sslmode=disable&PASSWORD=x": true,
		"host=127.0.0.1 user=app password=s3cret dbname=slipway":      true,
		"host=127.0.0.1 user=app PassWord = s3cret":                   true, // libpq allows spaces around =
		"postgres://app:s3%zzcret@127.0.0.1/slipway":                  true, // unparsable, still refused
		"postgres://app@127.0.0.1/slipway?sslmode=disable":            false,
		"postgres://127.0.0.1:5432/slipway":                           false,
		"host=/var/run/postgresql dbname=slipway":                     false,
		"": false,
	} {
		if got := databaseURLHasPassword(s); got != want {
			t.Errorf("databaseURLHasPassword(%q) = %v, want %v", s, got, want)
		}
	}
}
