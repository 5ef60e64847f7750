package web

import (
	"net/http"
	"net/url"
	"strings"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

type appsData struct {
	Apps     []slipway.Application
	Archived bool
	Name     string // the create form's value after a refused create
}

func (w *Web) appsData(r *http.Request, q *req, archived bool) (appsData, error) {
	status := slipway.AppStatus("")
	if archived {
		status = slipway.AppArchived
	}
	apps, _, err := w.svc.ListApplications(r.Context(), q.a, status, store.Page{Limit: store.MaxPageLimit})
	if err != nil {
		return appsData{}, err
	}
	d := appsData{Archived: archived}
	for _, a := range apps {
		if archived || a.Status != slipway.AppArchived {
			d.Apps = append(d.Apps, a)
		}
	}
	return d, nil
}

func (w *Web) appsPage(rw http.ResponseWriter, r *http.Request, q *req) error {
	d, err := w.appsData(r, q, r.URL.Query().Get("archived") == "1")
	if err != nil {
		return err
	}
	return w.render(rw, http.StatusOK, "apps", q.page("Applications", "apps", d))
}

func (w *Web) createApp(rw http.ResponseWriter, r *http.Request, q *req) error {
	in := service.ApplicationInput{Name: strings.TrimSpace(r.PostFormValue("name")), Description: strings.TrimSpace(r.PostFormValue("description"))}
	app, err := w.svc.CreateApplication(r.Context(), q.a, in)
	if err != nil {
		e, ok := slipway.AsError(err)
		if !ok || e.Code == slipway.ECodeForbidden {
			return err
		}
		d, derr := w.appsData(r, q, false)
		if derr != nil {
			return derr
		}
		d.Name = in.Name
		p := q.page("Applications", "apps", d)
		p.Error = withFix(e, "use lower-case letters, digits and dashes, starting with a letter (for example my-shop)")
		return w.render(rw, httpStatus(e), "apps", p)
	}
	return redirect(rw, r, orgURL(q.org.ID, "apps", app.ID))
}

type envView struct {
	slipway.Environment
	Services []slipway.Service
}

type appData struct {
	App  slipway.Application
	Envs []envView
}

func (w *Web) appPageWith(rw http.ResponseWriter, r *http.Request, q *req, status int, formErr *slipway.Error) error {
	ctx := r.Context()
	app, err := w.svc.GetApplication(ctx, q.a, r.PathValue("app"))
	if err != nil {
		return err
	}
	envs, err := w.svc.ListEnvironments(ctx, q.a, app.ID)
	if err != nil {
		return err
	}
	d := appData{App: app}
	for _, e := range envs {
		svcs, _, err := w.svc.ListServices(ctx, q.a, e.ID, store.Page{Limit: store.MaxPageLimit})
		if err != nil {
			return err
		}
		d.Envs = append(d.Envs, envView{Environment: e, Services: svcs})
	}
	p := q.page(app.Name, "apps", d)
	p.Error = formErr
	return w.render(rw, status, "app", p)
}

func (w *Web) appPage(rw http.ResponseWriter, r *http.Request, q *req) error {
	return w.appPageWith(rw, r, q, http.StatusOK, nil)
}

// orShow re-renders the Application page with err when it is a refusal
// the user can act on, and returns err otherwise.
func (w *Web) orShowOnApp(rw http.ResponseWriter, r *http.Request, q *req, err error) error {
	e, ok := slipway.AsError(err)
	if !ok || e.Code == slipway.ECodeNotFound || e.Code == slipway.ECodeForbidden {
		return err
	}
	return w.appPageWith(rw, r, q, httpStatus(e), e)
}

func (w *Web) setAppStatus(rw http.ResponseWriter, r *http.Request, q *req) error {
	to := slipway.AppStatus(r.PostFormValue("status"))
	app, err := w.svc.SetApplicationStatus(r.Context(), q.a, r.PathValue("app"), to)
	if err != nil {
		return w.orShowOnApp(rw, r, q, err)
	}
	return redirect(rw, r, orgURL(q.org.ID, "apps", app.ID))
}

func (w *Web) createEnv(rw http.ResponseWriter, r *http.Request, q *req) error {
	appID := r.PathValue("app")
	if _, err := w.svc.CreateEnvironment(r.Context(), q.a, appID, service.EnvironmentInput{Name: strings.TrimSpace(r.PostFormValue("name"))}); err != nil {
		return w.orShowOnApp(rw, r, q, err)
	}
	return redirect(rw, r, orgURL(q.org.ID, "apps", appID))
}

func (w *Web) activateEnv(rw http.ResponseWriter, r *http.Request, q *req) error {
	env, err := w.svc.ActivateEnvironment(r.Context(), q.a, r.PathValue("env"))
	if err != nil {
		return err
	}
	return redirect(rw, r, orgURL(q.org.ID, "apps", env.ApplicationID))
}

func (w *Web) defaultEnv(rw http.ResponseWriter, r *http.Request, q *req) error {
	env, err := w.svc.SetDefaultEnvironment(r.Context(), q.a, r.PathValue("env"))
	if err != nil {
		return err
	}
	return redirect(rw, r, orgURL(q.org.ID, "apps", env.ApplicationID))
}

// wizardData drives the New Service page, one step per missing choice:
// integration → repository → branch or tag and settings.
type wizardData struct {
	Env          slipway.Environment
	App          slipway.Application
	Step         int
	Integrations []slipway.Integration
	Integration  *slipway.Integration
	Search       string
	Repos        []forge.Repo
	ReposError   *slipway.Error
	Pager        pager
	RepoID       string
	RepoName     string
	Refs         []forge.Ref
	RefsError    *slipway.Error
	Form         serviceForm
}

// serviceForm holds the settings step's values, so a refused save shows
// them again next to the error.
type serviceForm struct {
	Name, Ref, RootDir, WatchPaths             string
	AutoDeploy                                 bool
	InstallCommand, BuildCommand, StartCommand string
	HealthPath                                 string
}

// URL returns the wizard's address with extra query parameters.
func (d wizardData) URL(orgID string, kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	u := orgURL(orgID, "envs", d.Env.ID, "services", "new")
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	return u
}

func (w *Web) wizard(r *http.Request, q *req, integrationID, repoID, repoName, defaultBranch string) (wizardData, error) {
	ctx := r.Context()
	env, err := w.svc.GetEnvironment(ctx, q.a, r.PathValue("env"))
	if err != nil {
		return wizardData{}, err
	}
	app, err := w.svc.GetApplication(ctx, q.a, env.ApplicationID)
	if err != nil {
		return wizardData{}, err
	}
	d := wizardData{Env: env, App: app, Step: 1, Form: serviceForm{AutoDeploy: true}}
	if integrationID == "" {
		all, err := w.svc.ListIntegrations(ctx, q.a)
		if err != nil {
			return d, err
		}
		for _, in := range all {
			if in.Status == slipway.IntegrationConnected {
				d.Integrations = append(d.Integrations, in)
			}
		}
		return d, nil
	}
	integ, err := w.svc.GetIntegration(ctx, q.a, integrationID)
	if err != nil {
		return d, err
	}
	d.Integration, d.Step = &integ, 2
	if repoID == "" {
		d.Search = strings.TrimSpace(r.URL.Query().Get("q"))
		d.Pager = pagerFrom(r, reposPerPage)
		repos, total, err := w.svc.ListRepos(ctx, q.a, integ.ID, d.Search, store.Page{Limit: reposPerPage, Offset: d.Pager.Offset()})
		if err != nil {
			d.ReposError = userError(err)
		}
		d.Repos, d.Pager.Total = repos, total
		return d, nil
	}
	d.Step, d.RepoID, d.RepoName = 3, repoID, repoName
	if d.Refs, err = w.svc.ListRefs(ctx, q.a, integ.ID, repoID); err != nil {
		d.RefsError = userError(err)
	}
	if defaultBranch != "" {
		d.Form.Ref = "branch:" + defaultBranch
	}
	if i := strings.LastIndex(repoName, "/"); i >= 0 {
		d.Form.Name = serviceNameFrom(repoName[i+1:])
	}
	return d, nil
}

// serviceNameFrom suggests a Service name from a repository name.
func serviceNameFrom(repo string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(repo) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9' && b.Len() > 0:
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

func (w *Web) newServicePage(rw http.ResponseWriter, r *http.Request, q *req) error {
	v := r.URL.Query()
	d, err := w.wizard(r, q, v.Get("integration"), v.Get("repo"), v.Get("repo_name"), v.Get("default_branch"))
	if err != nil {
		return err
	}
	return w.render(rw, http.StatusOK, "new_service", q.page("New service", "apps", d))
}

func (w *Web) createService(rw http.ResponseWriter, r *http.Request, q *req) error {
	f := r.PostFormValue
	form := serviceForm{Name: strings.TrimSpace(f("name")), Ref: f("ref"), RootDir: strings.TrimSpace(f("root_dir")), WatchPaths: f("watch_paths"),
		AutoDeploy: f("auto_deploy") == "on", InstallCommand: strings.TrimSpace(f("install_command")), BuildCommand: strings.TrimSpace(f("build_command")),
		StartCommand: strings.TrimSpace(f("start_command")), HealthPath: strings.TrimSpace(f("health_path"))}
	src := slipway.ServiceSource{IntegrationID: f("integration"), RepoID: f("repo"), RepoName: f("repo_name"), RootDir: form.RootDir, AutoDeploy: form.AutoDeploy}
	kind, name, _ := strings.Cut(form.Ref, ":")
	switch kind {
	case "branch":
		src.Branch = name
	case "tag":
		src.Tag = name
	case "pattern":
		src.TagPattern = name
	}
	for _, line := range strings.FieldsFunc(form.WatchPaths, func(r rune) bool { return r == '\n' || r == ',' }) {
		if p := strings.TrimSpace(line); p != "" {
			src.WatchPaths = append(src.WatchPaths, p)
		}
	}
	build := slipway.BuildSettings{InstallCommand: form.InstallCommand, BuildCommand: form.BuildCommand, StartCommand: form.StartCommand, HealthPath: form.HealthPath}
	svc, err := w.svc.CreateService(r.Context(), q.a, r.PathValue("env"), service.ServiceInput{Name: form.Name, Type: slipway.ServiceApp, Source: &src, Build: &build})
	if err != nil {
		e, ok := slipway.AsError(err)
		if !ok || e.Code == slipway.ECodeForbidden || e.Code == slipway.ECodeNotFound && src.IntegrationID == "" {
			return err
		}
		d, derr := w.wizard(r, q, src.IntegrationID, src.RepoID, src.RepoName, "")
		if derr != nil {
			return derr
		}
		d.Form = form
		p := q.page("New service", "apps", d)
		p.Error = e
		return w.render(rw, httpStatus(e), "new_service", p)
	}
	if f("then") == "deploy" {
		dep, err := w.svc.Deploy(r.Context(), q.a, svc.ID, service.DeployInput{})
		if err != nil {
			return err
		}
		return redirect(rw, r, orgURL(q.org.ID, "deployments", dep.ID))
	}
	return redirect(rw, r, orgURL(q.org.ID, "services", svc.ID))
}

func withFix(e *slipway.Error, fix string) *slipway.Error {
	if e.Fix != "" {
		return e
	}
	return &slipway.Error{Code: e.Code, Message: e.Message, Fix: fix, Details: e.Details}
}
