package giteatest_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"slipway.dev/slipway/internal/testenv/giteatest"
)

func TestMain(m *testing.M) { giteatest.Main(m) }

func TestHelpersAgainstRealGitea(t *testing.T) {
	s := giteatest.Shared(t)
	ctx := context.Background()

	user := giteatest.UniqueName("alice")
	pw := s.CreateUser(t, user)
	org := giteatest.UniqueName("acme")
	s.CreateOrg(t, user, org)

	userRepo := s.CreateRepo(t, user, "app", true)
	orgRepo := s.CreateRepo(t, org, "svc", false)
	if userRepo == 0 || orgRepo == 0 || userRepo == orgRepo {
		t.Fatalf("repo ids %d, %d", userRepo, orgRepo)
	}
	var got struct {
		FullName      string `json:"full_name"`
		DefaultBranch string `json:"default_branch"`
		Private       bool   `json:"private"`
	}
	if err := s.API(ctx, user, pw, http.MethodGet, "/repos/"+org+"/svc", nil, &got); err != nil {
		t.Fatal(err)
	}
	if got.FullName != org+"/svc" || got.DefaultBranch != "main" || got.Private {
		t.Errorf("org repo = %+v", got)
	}

	token := s.CreateToken(t, user, pw, "ci", "read:user", "read:repository")
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/api/v1/user", nil)
	req.Header.Set("Authorization", "token "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token rejected: HTTP %d", resp.StatusCode)
	}
	s.DeleteToken(t, user, pw, "ci")
	req, _ = http.NewRequest(http.MethodGet, s.URL()+"/api/v1/user", nil)
	req.Header.Set("Authorization", "token "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("deleted token: HTTP %d, want 401", resp.StatusCode)
	}

	sha := s.PushCommit(t, user, pw, user+"/app", "feature", map[string]string{"a/b.txt": "hello"}, "add b")
	if len(sha) != 40 {
		t.Fatalf("PushCommit sha %q", sha)
	}
	var branch struct {
		Commit struct {
			ID string `json:"id"`
		} `json:"commit"`
	}
	if err := s.API(ctx, user, pw, http.MethodGet, "/repos/"+user+"/app/branches/feature", nil, &branch); err != nil {
		t.Fatal(err)
	}
	if branch.Commit.ID != sha {
		t.Errorf("branch feature at %s, pushed %s", branch.Commit.ID, sha)
	}
	s.CreateBranch(t, user, "app", "release", "feature")
	s.CreateTag(t, user, "app", "v1", "release", "release v1")
	var tag struct {
		Commit struct {
			SHA string `json:"sha"`
		} `json:"commit"`
	}
	if err := s.API(ctx, user, pw, http.MethodGet, "/repos/"+user+"/app/tags/v1", nil, &tag); err != nil {
		t.Fatal(err)
	}
	if tag.Commit.SHA != sha {
		t.Errorf("tag v1 at %s, want %s", tag.Commit.SHA, sha)
	}
	if hooks := s.ListHooks(t, user, "app"); len(hooks) != 0 {
		t.Errorf("new repo has hooks: %+v", hooks)
	}

	redirect := "http://127.0.0.1:1/callback"
	clientID, secret := s.CreateOAuthApp(t, user, pw, "slipway", redirect)
	if clientID == "" || secret == "" {
		t.Fatal("empty oauth client")
	}
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {"code"},
		"state": {"xyz"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
		"code_challenge_method": {"S256"}}
	to := s.Consent(t, user, pw, s.URL()+"/login/oauth/authorize?"+q.Encode())
	if to.Host != "127.0.0.1:1" || to.Query().Get("state") != "xyz" || to.Query().Get("code") == "" {
		t.Errorf("consent redirected to %s", to)
	}
}
