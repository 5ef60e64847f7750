package giteatest

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// hiddenInput matches the <input type="hidden" name=… value=…> fields of
// Gitea's forms, in the attribute order its templates use.
var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)

// Consent completes Gitea's OAuth2 consent screen as user with plain HTTP,
// as a browser would: sign in, open authorizeURL, grant access. It returns
// where Gitea redirects to (the client's callback with code and state)
// without following it.
func (s *Server) Consent(t testing.TB, user, password, authorizeURL string) (redirectedTo *url.URL) {
	t.Helper()
	u, err := s.consent(context.Background(), user, password, authorizeURL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (s *Server) consent(ctx context.Context, user, password, authorizeURL string) (*url.URL, error) {
	jar, _ := cookiejar.New(nil)
	client := &http.Client{
		Jar:     jar,
		Timeout: s.http.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	get := func(u string) (*http.Response, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), nil
	}
	post := func(u string, form url.Values) (*http.Response, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, "", err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), nil
	}

	_, page, err := get(s.baseURL + "/user/login")
	if err != nil {
		return nil, fmt.Errorf("login page: %w", err)
	}
	login := hiddenFields(page)
	login.Set("user_name", user)
	login.Set("password", password)
	resp, body, err := post(s.baseURL+"/user/login", login)
	if err != nil {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("sign in as %s: HTTP %d (want a redirect): %.300s", user, resp.StatusCode, body)
	}

	resp, page, err = get(authorizeURL)
	if err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	if resp.StatusCode/100 == 3 {
		// Granted before: Gitea redirects straight to the callback.
		return resp.Location()
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("authorize: HTTP %d: %.300s", resp.StatusCode, page)
	}
	grant := hiddenFields(page)
	if grant.Get("client_id") == "" {
		return nil, fmt.Errorf("authorize: no consent form in page: %.500s", page)
	}
	grant.Set("granted", "true")
	resp, body, err = post(s.baseURL+"/login/oauth/grant", grant)
	if err != nil {
		return nil, fmt.Errorf("grant: %w", err)
	}
	if resp.StatusCode/100 != 3 {
		return nil, fmt.Errorf("grant: HTTP %d (want a redirect): %.300s", resp.StatusCode, body)
	}
	return resp.Location()
}

func hiddenFields(page string) url.Values {
	v := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
		v.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return v
}
