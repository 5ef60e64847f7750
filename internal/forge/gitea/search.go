package gitea

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	sdk "code.gitea.io/sdk/gitea"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// searchRepos searches the repositories account uid can see. The SDK's
// search always asks for the account's own repositories only
// (exclusive=true), which would drop its organisations' and
// collaborations', so this one request is made by hand.
func searchRepos(ctx context.Context, c *forge.Conn, q string, uid int64, page, perPage int) (forge.RepoPage, error) {
	token, err := c.AccessToken(ctx)
	if err != nil {
		return forge.RepoPage{}, fmt.Errorf("gitea: access token: %w", err)
	}
	v := url.Values{
		"q": {q}, "uid": {strconv.FormatInt(uid, 10)}, "exclusive": {"false"}, "private": {"true"},
		"page": {strconv.Itoa(page)}, "limit": {strconv.Itoa(perPage)},
	}
	endpoint := strings.TrimSuffix(c.APIBaseURL(), "/") + "/api/v1/repos/search?" + v.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return forge.RepoPage{}, fmt.Errorf("gitea: search repositories: %w", err)
	}
	req.Header.Set("Authorization", "token "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		return forge.RepoPage{}, mapErr("search repositories", nil, err, "")
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return forge.RepoPage{}, fmt.Errorf("gitea: search repositories: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var msg struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(body, &msg)
		return forge.RepoPage{}, mapErr("search repositories", &sdk.Response{Response: resp}, fmt.Errorf("%s", msg.Message), "")
	}
	var out struct {
		OK   bool              `json:"ok"`
		Data []*sdk.Repository `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return forge.RepoPage{}, fmt.Errorf("gitea: search repositories: decode: %w", err)
	}
	res := forge.RepoPage{Repos: make([]forge.Repo, 0, len(out.Data))}
	for _, r := range out.Data {
		res.Repos = append(res.Repos, toRepo(r))
	}
	if total, err := strconv.Atoi(resp.Header.Get("X-Total-Count")); err == nil && page*perPage < total {
		res.NextPage = page + 1
	}
	if res.Repos == nil || !out.OK {
		return res, slipway.Errorf(slipway.ECodeProviderError, "gitea: search repositories: unexpected answer")
	}
	return res, nil
}
