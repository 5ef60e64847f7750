package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
)

func (ta testAPI) json(t *testing.T, method, path, token string, body any, want int, out any) {
	t.Helper()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	a := ta.send(t, method, path, token, raw)
	if a.status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, a.status, want, a.body)
	}
	if out != nil {
		if err := json.Unmarshal(a.body, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// developer adds a Developer to the bootstrap organisation and returns
// their user id and an API token of theirs.
func (ta testAPI) developer(t *testing.T, email string) (string, string) {
	t.Helper()
	var added service.AddMemberResult
	ta.json(t, "POST", "/api/v1/members", ta.token, service.CreateUserInput{Email: email, Password: "developer-password"}, http.StatusCreated, &added)
	if added.Membership == nil {
		t.Fatalf("new user was not added: %+v", added)
	}
	var me Me
	ta.json(t, "GET", "/api/v1/me", ta.token, nil, 200, &me)
	dev, err := ta.api.svc.ActorFor(context.Background(), me.OrgID, added.Membership.UserID)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ta.api.svc.CreateToken(context.Background(), dev, "dev", 0)
	if err != nil {
		t.Fatal(err)
	}
	return dev.UserID, tok.Secret
}

// TestRevokingAnotherMembersTokenNeedsTheMembersPermission: a Developer
// (members: read only) tried to revoke the administrator's token; before,
// any member could revoke any token of the organisation.
func TestRevokingAnotherMembersTokenNeedsTheMembersPermission(t *testing.T) {
	ta := newTestAPI(t)
	_, devToken := ta.developer(t, "dev@example.com")
	var adminTok, devTok service.CreateTokenResult
	ta.json(t, "POST", "/api/v1/tokens", ta.token, TokenInput{Name: "ci"}, 201, &adminTok)
	ta.json(t, "POST", "/api/v1/tokens", devToken, TokenInput{Name: "laptop"}, 201, &devTok)

	a := ta.send(t, "DELETE", "/api/v1/tokens/"+adminTok.Token.ID, devToken, nil)
	if a.status != http.StatusForbidden || a.problem(t).Code != slipway.ECodeForbidden {
		t.Fatalf("developer revoking the admin's token: status %d %s", a.status, a.body)
	}
	ta.json(t, "GET", "/api/v1/me", adminTok.Secret, nil, 200, nil) // still works
	// Their own token: yes. Another member's, with the members permission: yes.
	ta.json(t, "DELETE", "/api/v1/tokens/"+devTok.Token.ID, devToken, nil, 204, nil)
	var again service.CreateTokenResult
	ta.json(t, "POST", "/api/v1/tokens", devToken, TokenInput{Name: "laptop-2"}, 201, &again)
	ta.json(t, "DELETE", "/api/v1/tokens/"+again.Token.ID, ta.token, nil, 204, nil)
	if a := ta.send(t, "GET", "/api/v1/me", again.Secret, nil); a.status != http.StatusUnauthorized {
		t.Errorf("revoked token still answers: %d", a.status)
	}
	// Another organisation's token is not found, even for an Admin.
	var org slipway.Organisation
	ta.json(t, "POST", "/api/v1/orgs", ta.token, OrgInput{Name: "second"}, 201, &org)
	var foreign service.CreateTokenResult
	ta.json(t, "POST", "/api/v1/orgs/"+org.ID+"/tokens", ta.token, TokenInput{Name: "second-cli"}, 201, &foreign)
	if a := ta.send(t, "DELETE", "/api/v1/tokens/"+foreign.Token.ID, ta.token, nil); a.status != http.StatusNotFound {
		t.Errorf("revoking a token of another organisation through this one: status %d, want 404", a.status)
	}
}

// TestTokensForEveryOrganisationOfTheUser: a member of two organisations
// gets a token for the second (by id or name); a user who is not a member
// of an organisation gets 404 for it, as for one that does not exist.
func TestTokensForEveryOrganisationOfTheUser(t *testing.T) {
	ta := newTestAPI(t)
	_, devToken := ta.developer(t, "dev@example.com")
	var org slipway.Organisation
	ta.json(t, "POST", "/api/v1/orgs", ta.token, OrgInput{Name: "second"}, 201, &org)
	for _, ref := range []string{org.ID, "second"} {
		var res service.CreateTokenResult
		ta.json(t, "POST", "/api/v1/orgs/"+ref+"/tokens", ta.token, TokenInput{Name: "cli", TTLSeconds: 3600}, 201, &res)
		var me Me
		ta.json(t, "GET", "/api/v1/me", res.Secret, nil, 200, &me)
		if me.OrgID != org.ID || me.Role != slipway.RoleAdmin {
			t.Errorf("token for %q acts in %+v", ref, me)
		}
		if res.Token.ExpiresAt == nil {
			t.Errorf("ttl_seconds did not give the token an expiry")
		}
	}
	for _, ref := range []string{org.ID, "second", "org_missing"} {
		a := ta.send(t, "POST", "/api/v1/orgs/"+ref+"/tokens", devToken, []byte(`{"name":"steal"}`))
		if a.status != http.StatusNotFound {
			t.Errorf("non-member asking a token for %q: status %d, want 404", ref, a.status)
		}
	}
}

// TestInstallationSettingsAreForInstallationAdmins: anyone may create an
// organisation and be its Admin; that must not reach the installation.
func TestInstallationSettingsAreForInstallationAdmins(t *testing.T) {
	ta := newTestAPI(t)
	devID, devToken := ta.developer(t, "dev@example.com")
	var own slipway.Organisation
	ta.json(t, "POST", "/api/v1/orgs", devToken, OrgInput{Name: "devs-own"}, 201, &own)
	var ownTok service.CreateTokenResult
	ta.json(t, "POST", "/api/v1/orgs/"+own.ID+"/tokens", devToken, TokenInput{Name: "cli"}, 201, &ownTok)
	var me Me
	ta.json(t, "GET", "/api/v1/me", ownTok.Secret, nil, 200, &me)
	if me.Role != slipway.RoleAdmin {
		t.Fatalf("the developer is %q of their own organisation, want Admin", me.Role)
	}
	for _, tok := range []string{devToken, ownTok.Secret} {
		for _, req := range [][2]string{{"GET", "/api/v1/installation"}, {"PUT", "/api/v1/installation/admins/" + devID}} {
			if a := ta.send(t, req[0], req[1], tok, nil); a.status != http.StatusForbidden {
				t.Errorf("organisation Admin %s %s: status %d, want 403", req[0], req[1], a.status)
			}
		}
	}
	ta.json(t, "GET", "/api/v1/installation", ta.token, nil, 200, nil)
	var admin Me
	ta.json(t, "GET", "/api/v1/me", ta.token, nil, 200, &admin)
	if a := ta.send(t, "DELETE", "/api/v1/installation/admins/"+admin.UserID, ta.token, nil); a.status != http.StatusConflict {
		t.Errorf("the last step away from the role: status %d, want 409", a.status)
	}
	ta.json(t, "PUT", "/api/v1/installation/admins/"+devID, ta.token, nil, 204, nil)
	ta.json(t, "GET", "/api/v1/installation", ownTok.Secret, nil, 200, nil)
	ta.json(t, "DELETE", "/api/v1/installation/admins/"+devID, ta.token, nil, 204, nil)
	if a := ta.send(t, "GET", "/api/v1/installation", devToken, nil); a.status != http.StatusForbidden {
		t.Errorf("after the role was taken away: status %d", a.status)
	}
}

// TestAddingAnExistingUserAnswersWithAnInvitation: 202 and an invitation,
// no membership; the invited user's own token sees it and can accept.
func TestAddingAnExistingUserAnswersWithAnInvitation(t *testing.T) {
	ta := newTestAPI(t)
	devID, devToken := ta.developer(t, "dev@example.com")
	var org slipway.Organisation
	ta.json(t, "POST", "/api/v1/orgs", ta.token, OrgInput{Name: "second"}, 201, &org)
	var second service.CreateTokenResult
	ta.json(t, "POST", "/api/v1/orgs/"+org.ID+"/tokens", ta.token, TokenInput{Name: "cli"}, 201, &second)
	var res service.AddMemberResult
	ta.json(t, "POST", "/api/v1/members", second.Secret, service.CreateUserInput{Email: "dev@example.com", Role: "Admin"}, http.StatusAccepted, &res)
	if res.Membership != nil || res.Invitation == nil || res.Invitation.UserID != devID {
		t.Fatalf("add existing user = %+v", res)
	}
	var mine List[slipway.Invitation]
	ta.json(t, "GET", "/api/v1/invitations", devToken, nil, 200, &mine)
	if mine.Total != 1 || mine.Items[0].OrgName != "second" {
		t.Fatalf("invitations of the invited user = %+v", mine)
	}
	if a := ta.send(t, "POST", "/api/v1/invitations/"+res.Invitation.ID+"/accept", second.Secret, nil); a.status != http.StatusNotFound {
		t.Errorf("the inviter accepting for the invited: status %d, want 404", a.status)
	}
	if a := ta.send(t, "POST", "/api/v1/orgs/"+org.ID+"/tokens", devToken, []byte(`{"name":"x"}`)); a.status != http.StatusNotFound {
		t.Errorf("before accepting, a token for the inviting organisation: status %d", a.status)
	}
	ta.json(t, "POST", "/api/v1/invitations/"+res.Invitation.ID+"/accept", devToken, nil, 200, nil)
	ta.json(t, "POST", "/api/v1/orgs/"+org.ID+"/tokens", devToken, TokenInput{Name: "x"}, 201, nil)
}
