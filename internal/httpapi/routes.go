package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

// DomainInput names a custom domain to add.
type DomainInput struct {
	Domain string `json:"domain"`
}

// Me is the answer of GET /api/v1/me.
type Me struct {
	UserID string `json:"user_id"`
	OrgID  string `json:"org_id"`
	Role   string `json:"role"`
}

// DeliveryView is a delivery in the delivery log (without its raw body).
type DeliveryView struct {
	ID                 string            `json:"id"`
	ProviderDeliveryID string            `json:"provider_delivery_id,omitempty"`
	Event              string            `json:"event"`
	Verdict            string            `json:"verdict"`
	Detail             string            `json:"detail,omitempty"`
	Caused             []string          `json:"caused,omitempty"`
	Headers            map[string]string `json:"headers,omitempty"`
	ReceivedAt         time.Time         `json:"received_at"`
	ProcessedAt        *time.Time        `json:"processed_at,omitempty"`
}

func deliveryView(d store.Delivery) DeliveryView {
	return DeliveryView{ID: d.ID, ProviderDeliveryID: d.ProviderDeliveryID, Event: d.Event, Verdict: d.Verdict, Detail: d.Detail,
		Caused: d.Caused, Headers: d.Headers, ReceivedAt: d.ReceivedAt, ProcessedAt: d.ProcessedAt}
}

// HookView is a repository webhook and its health.
type HookView struct {
	ID             string     `json:"id"`
	RepoID         string     `json:"repo_id"`
	ProviderHookID string     `json:"provider_hook_id,omitempty"`
	Status         string     `json:"status"`
	LastDeliveryAt *time.Time `json:"last_delivery_at,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
}

// DeployHookView is a freshly rotated deploy-hook URL, shown once.
type DeployHookView struct {
	URL string `json:"url"`
}

// RollbackInput chooses the release to roll back to.
type RollbackInput struct {
	To string `json:"to,omitempty"`
}

// RedeployInput chooses cache use.
type RedeployInput struct {
	NoCache bool `json:"no_cache,omitempty"`
}

// MemberRoleInput changes a member's role.
type MemberRoleInput struct {
	Role string `json:"role"`
}

// TokenInput creates an API token.
type TokenInput struct {
	Name       string `json:"name"`
	TTLSeconds int    `json:"ttl_seconds,omitempty"`
}

// OrgInput creates an organisation.
type OrgInput struct {
	Name string `json:"name"`
}

func (api *API) table() []route {
	s := api.svc
	return []route{
		{method: "GET", pattern: "/api/v1/me", summary: "Who the token acts as", tag: "organisations", response: Me{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				return writeJSON(w, 200, Me{UserID: a.UserID, OrgID: a.OrgID, Role: a.RoleName})
			}},
		{method: "GET", pattern: "/api/v1/orgs", summary: "List your organisations", tag: "organisations", response: List[slipway.Organisation]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				orgs, err := s.ListOrganisations(r.Context(), a)
				if err != nil {
					return err
				}
				return writeJSON(w, 200, listOf(orgs, len(orgs), store.Page{Limit: len(orgs)}))
			}},
		{method: "POST", pattern: "/api/v1/orgs", summary: "Create an organisation", tag: "organisations", request: OrgInput{}, response: slipway.Organisation{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in OrgInput
				if err := decode(r, &in); err != nil {
					return err
				}
				org, err := s.CreateOrganisation(r.Context(), a, in.Name)
				if err != nil {
					return err
				}
				return writeJSON(w, 201, org)
			}},
		{method: "GET", pattern: "/api/v1/orgs/{org}", summary: "Get an organisation", tag: "organisations", response: slipway.Organisation{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				org, err := s.GetOrganisation(r.Context(), a, r.PathValue("org"))
				return respond(w, 200, org, err)
			}},

		// Members, roles, tokens.
		{method: "GET", pattern: "/api/v1/members", summary: "List members", tag: "members", response: List[slipway.Membership]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				p, err := page(r)
				if err != nil {
					return err
				}
				items, total, err := s.ListMembers(r.Context(), a, p)
				return respond(w, 200, listOf(items, total, p), err)
			}},
		{method: "POST", pattern: "/api/v1/members", summary: "Add a member: a new user joins at once (201); an existing user is invited and joins when they accept (202)", tag: "members", request: service.CreateUserInput{}, response: service.AddMemberResult{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in service.CreateUserInput
				if err := decode(r, &in); err != nil {
					return err
				}
				res, err := s.AddMember(r.Context(), a, in)
				status := 201
				if res.Invitation != nil {
					status = 202
				}
				return respond(w, status, res, err)
			}},
		{method: "GET", pattern: "/api/v1/members/invitations", summary: "The organisation's pending invitations", tag: "members", response: List[slipway.Invitation]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				items, err := s.ListInvitations(r.Context(), a)
				return respond(w, 200, listOf(items, len(items), store.Page{Limit: len(items)}), err)
			}},
		{method: "DELETE", pattern: "/api/v1/members/invitations/{inv}", summary: "Withdraw a pending invitation", tag: "members",
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				return respondEmpty(w, s.WithdrawInvitation(r.Context(), a, r.PathValue("inv")))
			}},
		{method: "GET", pattern: "/api/v1/invitations", summary: "Invitations waiting for your answer, from any organisation", tag: "members", response: List[slipway.Invitation]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				items, err := s.MyInvitations(r.Context(), a.UserID)
				return respond(w, 200, listOf(items, len(items), store.Page{Limit: len(items)}), err)
			}},
		{method: "POST", pattern: "/api/v1/invitations/{inv}/accept", summary: "Accept an invitation: you become a member", tag: "members", response: slipway.Invitation{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				inv, err := s.AnswerInvitation(r.Context(), a.UserID, r.PathValue("inv"), true)
				return respond(w, 200, inv, err)
			}},
		{method: "POST", pattern: "/api/v1/invitations/{inv}/decline", summary: "Decline an invitation", tag: "members", response: slipway.Invitation{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				inv, err := s.AnswerInvitation(r.Context(), a.UserID, r.PathValue("inv"), false)
				return respond(w, 200, inv, err)
			}},
		{method: "PATCH", pattern: "/api/v1/members/{user}", summary: "Change a member's role", tag: "members", request: MemberRoleInput{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in MemberRoleInput
				if err := decode(r, &in); err != nil {
					return err
				}
				return respondEmpty(w, s.UpdateMemberRole(r.Context(), a, r.PathValue("user"), in.Role))
			}},
		{method: "DELETE", pattern: "/api/v1/members/{user}", summary: "Remove a member", tag: "members",
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				return respondEmpty(w, s.RemoveMember(r.Context(), a, r.PathValue("user")))
			}},
		{method: "GET", pattern: "/api/v1/roles", summary: "List roles", tag: "roles", response: List[slipway.Role]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				roles, err := s.ListRoles(r.Context(), a)
				return respond(w, 200, listOf(roles, len(roles), store.Page{Limit: len(roles)}), err)
			}},
		{method: "POST", pattern: "/api/v1/roles", summary: "Create a custom role", tag: "roles", request: service.RoleInput{}, response: slipway.Role{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in service.RoleInput
				if err := decode(r, &in); err != nil {
					return err
				}
				role, err := s.CreateRole(r.Context(), a, in)
				return respond(w, 201, role, err)
			}},
		{method: "GET", pattern: "/api/v1/roles/{role}", summary: "Get a role", tag: "roles", response: slipway.Role{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				role, err := s.GetRole(r.Context(), a, r.PathValue("role"))
				return respond(w, 200, role, err)
			}},
		{method: "PATCH", pattern: "/api/v1/roles/{role}", summary: "Edit a custom role", tag: "roles", request: service.RoleInput{}, response: slipway.Role{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in service.RoleInput
				if err := decode(r, &in); err != nil {
					return err
				}
				role, err := s.UpdateRole(r.Context(), a, r.PathValue("role"), in)
				return respond(w, 200, role, err)
			}},
		{method: "DELETE", pattern: "/api/v1/roles/{role}", summary: "Delete a custom role", tag: "roles",
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				return respondEmpty(w, s.DeleteRole(r.Context(), a, r.PathValue("role")))
			}},
		{method: "GET", pattern: "/api/v1/tokens", summary: "List your API tokens", tag: "tokens", response: List[slipway.APIToken]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				toks, err := s.ListTokens(r.Context(), a)
				return respond(w, 200, listOf(toks, len(toks), store.Page{Limit: len(toks)}), err)
			}},
		{method: "POST", pattern: "/api/v1/tokens", summary: "Create an API token (the secret is shown once)", tag: "tokens", request: TokenInput{}, response: service.CreateTokenResult{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in TokenInput
				if err := decode(r, &in); err != nil {
					return err
				}
				res, err := s.CreateToken(r.Context(), a, in.Name, time.Duration(in.TTLSeconds)*time.Second)
				return respond(w, 201, res, err)
			}},
		{method: "POST", pattern: "/api/v1/orgs/{org}/tokens", summary: "Create an API token for yourself in another of your organisations (by id or name; the secret is shown once)", tag: "tokens", request: TokenInput{}, response: service.CreateTokenResult{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in TokenInput
				if err := decode(r, &in); err != nil {
					return err
				}
				res, err := s.CreateTokenForOrg(r.Context(), a, r.PathValue("org"), in.Name, time.Duration(in.TTLSeconds)*time.Second)
				return respond(w, 201, res, err)
			}},
		{method: "DELETE", pattern: "/api/v1/tokens/{token}", summary: "Revoke an API token (your own, or any with the members delete permission)", tag: "tokens",
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				return respondEmpty(w, s.DeleteToken(r.Context(), a, r.PathValue("token")))
			}},

		{method: "GET", pattern: "/api/v1/certificates", summary: "HTTPS certificates of the organisation's hosts (every name for installation administrators): state, expiry, what needs attention", tag: "services", response: List[service.CertificateView]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				v, err := s.Certificates(r.Context(), a)
				return respond(w, 200, List[service.CertificateView]{Items: v, Total: len(v), Limit: len(v)}, err)
			}},

		// The installation, above organisations.
		{method: "GET", pattern: "/api/v1/installation", summary: "Installation settings (installation administrators only)", tag: "installation", response: service.InstallationView{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				v, err := s.Installation(r.Context(), a)
				return respond(w, 200, v, err)
			}},
		{method: "PUT", pattern: "/api/v1/installation/admins/{user}", summary: "Make a user an installation administrator", tag: "installation",
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				return respondEmpty(w, s.SetInstallationAdmin(r.Context(), a, r.PathValue("user"), true))
			}},
		{method: "DELETE", pattern: "/api/v1/installation/admins/{user}", summary: "Take the installation administrator role from a user", tag: "installation",
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				return respondEmpty(w, s.SetInstallationAdmin(r.Context(), a, r.PathValue("user"), false))
			}},

		// Applications and environments.
		{method: "GET", pattern: "/api/v1/applications", summary: "List applications (?status=draft|active|archived)", tag: "applications", response: List[slipway.Application]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				p, err := page(r)
				if err != nil {
					return err
				}
				apps, total, err := s.ListApplications(r.Context(), a, slipway.AppStatus(r.URL.Query().Get("status")), p)
				return respond(w, 200, listOf(apps, total, p), err)
			}},
		{method: "POST", pattern: "/api/v1/applications", summary: "Create an application (with a default production environment)", tag: "applications", request: service.ApplicationInput{}, response: slipway.Application{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in service.ApplicationInput
				if err := decode(r, &in); err != nil {
					return err
				}
				app, err := s.CreateApplication(r.Context(), a, in)
				return respond(w, 201, app, err)
			}},
		{method: "GET", pattern: "/api/v1/applications/{app}", summary: "Get an application by id or name", tag: "applications", response: slipway.Application{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				app, err := s.GetApplication(r.Context(), a, r.PathValue("app"))
				return respond(w, 200, app, err)
			}},
		{method: "PATCH", pattern: "/api/v1/applications/{app}", summary: "Edit an application", tag: "applications", request: service.ApplicationInput{}, response: slipway.Application{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in service.ApplicationInput
				if err := decode(r, &in); err != nil {
					return err
				}
				app, err := s.UpdateApplication(r.Context(), a, r.PathValue("app"), in)
				return respond(w, 200, app, err)
			}},
		{method: "POST", pattern: "/api/v1/applications/{app}/archive", summary: "Archive an application", tag: "applications", response: slipway.Application{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				app, err := s.SetApplicationStatus(r.Context(), a, r.PathValue("app"), slipway.AppArchived)
				return respond(w, 200, app, err)
			}},
		{method: "POST", pattern: "/api/v1/applications/{app}/restore", summary: "Restore an archived application", tag: "applications", response: slipway.Application{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				app, err := s.SetApplicationStatus(r.Context(), a, r.PathValue("app"), slipway.AppActive)
				return respond(w, 200, app, err)
			}},
		{method: "GET", pattern: "/api/v1/applications/{app}/environments", summary: "List an application's environments", tag: "environments", response: List[slipway.Environment]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				envs, err := s.ListEnvironments(r.Context(), a, r.PathValue("app"))
				return respond(w, 200, listOf(envs, len(envs), store.Page{Limit: len(envs)}), err)
			}},
		{method: "POST", pattern: "/api/v1/applications/{app}/environments", summary: "Create an environment", tag: "environments", request: service.EnvironmentInput{}, response: slipway.Environment{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in service.EnvironmentInput
				if err := decode(r, &in); err != nil {
					return err
				}
				env, err := s.CreateEnvironment(r.Context(), a, r.PathValue("app"), in)
				return respond(w, 201, env, err)
			}},
		{method: "GET", pattern: "/api/v1/environments/{env}", summary: "Get an environment (id or APP/ENV)", tag: "environments", response: slipway.Environment{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				env, err := s.GetEnvironment(r.Context(), a, r.PathValue("env"))
				return respond(w, 200, env, err)
			}},
		{method: "POST", pattern: "/api/v1/environments/{env}/activate", summary: "Activate a draft environment", tag: "environments", response: slipway.Environment{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				env, err := s.ActivateEnvironment(r.Context(), a, r.PathValue("env"))
				return respond(w, 200, env, err)
			}},
		{method: "POST", pattern: "/api/v1/environments/{env}/default", summary: "Make an environment its application's default", tag: "environments", response: slipway.Environment{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				env, err := s.SetDefaultEnvironment(r.Context(), a, r.PathValue("env"))
				return respond(w, 200, env, err)
			}},

		// Services and deployments.
		{method: "GET", pattern: "/api/v1/environments/{env}/services", summary: "List an environment's services", tag: "services", response: List[slipway.Service]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				p, err := page(r)
				if err != nil {
					return err
				}
				svcs, total, err := s.ListServices(r.Context(), a, r.PathValue("env"), p)
				return respond(w, 200, listOf(svcs, total, p), err)
			}},
		{method: "POST", pattern: "/api/v1/environments/{env}/services", summary: "Create a service (the Git source is validated against the provider)", tag: "services", request: service.ServiceInput{}, response: slipway.Service{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in service.ServiceInput
				if err := decode(r, &in); err != nil {
					return err
				}
				svc, err := s.CreateService(r.Context(), a, r.PathValue("env"), in)
				return respond(w, 201, svc, err)
			}},
		{method: "GET", pattern: "/api/v1/services", summary: "List all services", tag: "services", response: List[slipway.Service]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				p, err := page(r)
				if err != nil {
					return err
				}
				svcs, total, err := s.ListServices(r.Context(), a, "", p)
				return respond(w, 200, listOf(svcs, total, p), err)
			}},
		{method: "GET", pattern: "/api/v1/services/{svc}", summary: "Get a service (id or APP/ENV/NAME)", tag: "services", response: slipway.Service{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				svc, err := s.ResolveService(r.Context(), a, r.PathValue("svc"))
				return respond(w, 200, svc, err)
			}},
		{method: "PATCH", pattern: "/api/v1/services/{svc}", summary: "Edit a service", tag: "services", request: service.ServiceInput{}, response: slipway.Service{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in service.ServiceInput
				if err := decode(r, &in); err != nil {
					return err
				}
				svc, err := s.UpdateService(r.Context(), a, r.PathValue("svc"), in)
				return respond(w, 200, svc, err)
			}},
		{method: "DELETE", pattern: "/api/v1/services/{svc}", summary: "Delete a service", tag: "services",
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				return respondEmpty(w, s.DeleteService(r.Context(), a, r.PathValue("svc")))
			}},
		{method: "POST", pattern: "/api/v1/services/{svc}/deploy", summary: "Deploy the service's branch/tag head, or a given ref or SHA", tag: "deployments", request: service.DeployInput{}, response: slipway.Deployment{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in service.DeployInput
				if err := decode(r, &in); err != nil {
					return err
				}
				d, err := s.Deploy(r.Context(), a, r.PathValue("svc"), in)
				return respond(w, 202, d, err)
			}},
		{method: "POST", pattern: "/api/v1/services/{svc}/redeploy", summary: "Redeploy the live commit (with or without build cache)", tag: "deployments", request: RedeployInput{}, response: slipway.Deployment{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in RedeployInput
				if err := decode(r, &in); err != nil {
					return err
				}
				d, err := s.Redeploy(r.Context(), a, r.PathValue("svc"), in.NoCache)
				return respond(w, 202, d, err)
			}},
		{method: "POST", pattern: "/api/v1/services/{svc}/rollback", summary: "Roll back to a previous release (pauses auto-deploy)", tag: "deployments", request: RollbackInput{}, response: slipway.Deployment{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in RollbackInput
				if err := decode(r, &in); err != nil {
					return err
				}
				d, err := s.Rollback(r.Context(), a, r.PathValue("svc"), in.To)
				return respond(w, 202, d, err)
			}},
		{method: "POST", pattern: "/api/v1/services/{svc}/restart", summary: "Restart the live release (no build)", tag: "deployments", response: slipway.Service{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				svc, err := s.RestartService(r.Context(), a, r.PathValue("svc"))
				return respond(w, 202, svc, err)
			}},
		{method: "POST", pattern: "/api/v1/services/{svc}/stop", summary: "Stop the live release (its hosts stop answering)", tag: "deployments", response: slipway.Service{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				svc, err := s.StopService(r.Context(), a, r.PathValue("svc"))
				return respond(w, 202, svc, err)
			}},
		{method: "POST", pattern: "/api/v1/services/{svc}/resume-auto-deploy", summary: "Resume auto-deploy after a rollback", tag: "services", response: slipway.Service{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				svc, err := s.ResumeAutoDeploy(r.Context(), a, r.PathValue("svc"))
				return respond(w, 200, svc, err)
			}},
		{method: "POST", pattern: "/api/v1/services/{svc}/deploy-hook", summary: "Rotate the service's deploy-hook URL (shown once)", tag: "services", response: DeployHookView{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				u, err := s.RotateDeployHook(r.Context(), a, r.PathValue("svc"))
				return respond(w, 200, DeployHookView{URL: u}, err)
			}},
		{method: "GET", pattern: "/api/v1/services/{svc}/variables", summary: "A service's variables (secret values masked)", tag: "services", response: List[service.VariableView]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				vars, err := s.ListVariables(r.Context(), a, r.PathValue("svc"))
				return respond(w, 200, listOf(vars, len(vars), store.Page{Limit: len(vars)}), err)
			}},
		{method: "PUT", pattern: "/api/v1/services/{svc}/variables/{key}", summary: "Set a variable ({{ secret(N) }} generates a secret once)", tag: "services", request: service.VariableInput{}, response: service.VariableView{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in service.VariableInput
				if err := decode(r, &in); err != nil {
					return err
				}
				if in.Key == "" {
					in.Key = r.PathValue("key")
				}
				if in.Key != r.PathValue("key") {
					return slipway.Errorf(slipway.ECodeInvalid, "the key in the body (%s) differs from the URL (%s)", in.Key, r.PathValue("key"))
				}
				v, err := s.SetVariable(r.Context(), a, r.PathValue("svc"), in)
				return respond(w, 200, v, err)
			}},
		{method: "DELETE", pattern: "/api/v1/services/{svc}/variables/{key}", summary: "Remove a variable", tag: "services",
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				return respondEmpty(w, s.DeleteVariable(r.Context(), a, r.PathValue("svc"), r.PathValue("key")))
			}},
		{method: "GET", pattern: "/api/v1/services/{svc}/domains", summary: "A service's custom domains: verified, or pending with the DNS record that proves ownership", tag: "services", response: List[service.DomainView]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				domains, err := s.ListDomains(r.Context(), a, r.PathValue("svc"))
				return respond(w, 200, listOf(domains, len(domains), store.Page{Limit: len(domains)}), err)
			}},
		{method: "POST", pattern: "/api/v1/services/{svc}/domains", summary: "Add a custom domain (pending until its TXT record is verified)", tag: "services", request: DomainInput{}, response: service.DomainView{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in DomainInput
				if err := decode(r, &in); err != nil {
					return err
				}
				d, err := s.AddDomain(r.Context(), a, r.PathValue("svc"), in.Domain)
				return respond(w, 201, d, err)
			}},
		{method: "POST", pattern: "/api/v1/services/{svc}/domains/{domain}/verify", summary: "Check a pending domain's TXT record now; verified domains are routed", tag: "services", response: service.DomainView{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				d, err := s.VerifyDomain(r.Context(), a, r.PathValue("svc"), r.PathValue("domain"))
				return respond(w, 200, d, err)
			}},
		{method: "DELETE", pattern: "/api/v1/services/{svc}/domains/{domain}", summary: "Remove a custom domain (it stops answering at once)", tag: "services",
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				return respondEmpty(w, s.RemoveDomain(r.Context(), a, r.PathValue("svc"), r.PathValue("domain")))
			}},
		{method: "GET", pattern: "/api/v1/services/{svc}/deployments", summary: "List a service's deployments, newest first", tag: "deployments", response: List[slipway.Deployment]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				p, err := page(r)
				if err != nil {
					return err
				}
				deps, total, err := s.ListDeployments(r.Context(), a, r.PathValue("svc"), p)
				return respond(w, 200, listOf(deps, total, p), err)
			}},
		{method: "GET", pattern: "/api/v1/deployments/{dep}", summary: "Get a deployment", tag: "deployments", response: slipway.Deployment{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				d, err := s.GetDeployment(r.Context(), a, r.PathValue("dep"))
				return respond(w, 200, d, err)
			}},
		{method: "POST", pattern: "/api/v1/deployments/{dep}/cancel", summary: "Cancel a queued or running deployment", tag: "deployments", response: slipway.Deployment{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				d, err := s.CancelDeployment(r.Context(), a, r.PathValue("dep"))
				return respond(w, 200, d, err)
			}},
		{method: "GET", pattern: "/api/v1/deployments/{dep}/logs", summary: "A deployment's log (?after=SEQ); with Accept: text/event-stream, a live stream", tag: "deployments", response: List[store.LogLine]{},
			handle: api.deploymentLogs},

		// Integrations.
		{method: "GET", pattern: "/api/v1/integrations", summary: "List integrations", tag: "integrations", response: List[slipway.Integration]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				items, err := s.ListIntegrations(r.Context(), a)
				return respond(w, 200, listOf(items, len(items), store.Page{Limit: len(items)}), err)
			}},
		{method: "POST", pattern: "/api/v1/integrations", summary: "Connect a provider with a token (or a GitHub App's credentials)", tag: "integrations", request: service.ConnectInput{}, response: slipway.Integration{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in service.ConnectInput
				if err := decode(r, &in); err != nil {
					return err
				}
				integ, err := s.Connect(r.Context(), a, in)
				return respond(w, 201, integ, err)
			}},
		{method: "POST", pattern: "/api/v1/integrations/oauth", summary: "Start connecting through the provider's OAuth consent screen", tag: "integrations", request: service.OAuthStartInput{}, response: service.OAuthStartResult{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in service.OAuthStartInput
				if err := decode(r, &in); err != nil {
					return err
				}
				res, err := s.OAuthStart(r.Context(), a, in)
				return respond(w, 201, res, err)
			}},
		{method: "GET", pattern: "/api/v1/integrations/{int}", summary: "Get an integration", tag: "integrations", response: slipway.Integration{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				integ, err := s.GetIntegration(r.Context(), a, r.PathValue("int"))
				return respond(w, 200, integ, err)
			}},
		{method: "DELETE", pattern: "/api/v1/integrations/{int}", summary: "Disconnect an integration (removes its webhooks, forgets its credentials)", tag: "integrations", response: slipway.Integration{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				integ, err := s.Disconnect(r.Context(), a, r.PathValue("int"))
				return respond(w, 200, integ, err)
			}},
		{method: "POST", pattern: "/api/v1/integrations/{int}/check", summary: "Diagnose an integration, with a fix for every problem", tag: "integrations", response: service.Diagnosis{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				d, err := s.CheckIntegration(r.Context(), a, r.PathValue("int"))
				return respond(w, 200, d, err)
			}},
		{method: "GET", pattern: "/api/v1/integrations/{int}/repos", summary: "The repository picker (?search=)", tag: "integrations", response: List[forge.Repo]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				p, err := page(r)
				if err != nil {
					return err
				}
				repos, total, err := s.ListRepos(r.Context(), a, r.PathValue("int"), r.URL.Query().Get("search"), p)
				return respond(w, 200, listOf(repos, total, p), err)
			}},
		{method: "POST", pattern: "/api/v1/integrations/{int}/repos/sync", summary: "Re-sync the repository picker from the provider", tag: "integrations",
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				n, err := s.SyncRepos(r.Context(), a, r.PathValue("int"))
				return respond(w, 200, map[string]int{"repositories": n}, err)
			}},
		{method: "GET", pattern: "/api/v1/integrations/{int}/refs", summary: "Branches and tags of a repository (?repo=ID or owner/name)", tag: "integrations", response: List[forge.Ref]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				repo := r.URL.Query().Get("repo")
				if repo == "" {
					return slipway.Errorf(slipway.ECodeInvalid, "the repo query parameter is required")
				}
				refs, err := s.ListRefs(r.Context(), a, r.PathValue("int"), repo)
				return respond(w, 200, listOf(refs, len(refs), store.Page{Limit: len(refs)}), err)
			}},
		{method: "GET", pattern: "/api/v1/integrations/{int}/hooks", summary: "Repository webhooks and their health", tag: "integrations", response: List[HookView]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				hooks, err := s.ListRepoHooks(r.Context(), a, r.PathValue("int"))
				views := make([]HookView, 0, len(hooks))
				for _, h := range hooks {
					views = append(views, HookView{ID: h.ID, RepoID: h.RepoID, ProviderHookID: h.ProviderHookID, Status: h.Status, LastDeliveryAt: h.LastDeliveryAt, LastError: h.LastError})
				}
				return respond(w, 200, listOf(views, len(views), store.Page{Limit: len(views)}), err)
			}},
		{method: "GET", pattern: "/api/v1/integrations/{int}/deliveries", summary: "The webhook delivery log", tag: "integrations", response: List[DeliveryView]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				p, err := page(r)
				if err != nil {
					return err
				}
				ds, total, err := s.ListDeliveries(r.Context(), a, r.PathValue("int"), p)
				views := make([]DeliveryView, 0, len(ds))
				for _, d := range ds {
					views = append(views, deliveryView(d))
				}
				return respond(w, 200, listOf(views, total, p), err)
			}},
		{method: "GET", pattern: "/api/v1/integrations/{int}/webhook-refusals", summary: "Recent webhook requests refused before anything was stored (this replica: time, source, hook, reason; never the body)", tag: "integrations", response: service.RefusalReport{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				rep, err := s.WebhookRefusals(r.Context(), a, r.PathValue("int"))
				return respond(w, 200, rep, err)
			}},
		{method: "POST", pattern: "/api/v1/integrations/{int}/deliveries/{delivery}/replay", summary: "Process a stored delivery again (deployments stay deduplicated)", tag: "integrations", response: DeliveryView{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				d, err := s.ReplayDelivery(r.Context(), a, r.PathValue("int"), r.PathValue("delivery"))
				return respond(w, 200, deliveryView(d), err)
			}},
	}
}

func respond(w http.ResponseWriter, status int, v any, err error) error {
	if err != nil {
		return err
	}
	return writeJSON(w, status, v)
}

func respondEmpty(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func queryInt64(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, slipway.Errorf(slipway.ECodeInvalid, "%s must be a non-negative integer", name)
	}
	return n, nil
}
