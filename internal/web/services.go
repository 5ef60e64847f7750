package web

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/httpapi"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

type serviceData struct {
	Service     slipway.Service
	App         slipway.Application
	Env         slipway.Environment
	Integration *slipway.Integration
	Live        *slipway.Deployment
	Deployments []slipway.Deployment
	Variables   []service.VariableView
	URL         string               // where the router serves the Service
	Hosts       []hostView           // every host the Service answers at
	Pending     []service.DomainView // custom domains waiting for their DNS record
	DeployHook  string               // shown once, right after a rotation
}

// hostView is one host claim of the Service, with the URL it answers at.
type hostView struct {
	slipway.HostClaim
	URL         string
	Certificate *service.CertificateView // nil: none asked for yet (or HTTPS off)
}

func (w *Web) serviceData(r *http.Request, q *req) (serviceData, error) {
	ctx := r.Context()
	svc, err := w.svc.ResolveService(ctx, q.a, r.PathValue("svc"))
	if err != nil {
		return serviceData{}, err
	}
	d := serviceData{Service: svc}
	if d.App, err = w.svc.GetApplication(ctx, q.a, svc.ApplicationID); err != nil {
		return d, err
	}
	if d.Env, err = w.svc.GetEnvironment(ctx, q.a, svc.EnvironmentID); err != nil {
		return d, err
	}
	if svc.Source.IntegrationID != "" {
		if in, err := w.svc.GetIntegration(ctx, q.a, svc.Source.IntegrationID); err == nil {
			d.Integration = &in
		}
	}
	if d.Deployments, _, err = w.svc.ListDeployments(ctx, q.a, svc.ID, store.Page{Limit: 20}); err != nil {
		return d, err
	}
	if svc.LiveDeploymentID != "" {
		if live, err := w.svc.GetDeployment(ctx, q.a, svc.LiveDeploymentID); err == nil {
			d.Live = &live
		}
	}
	if d.Variables, err = w.svc.ListVariables(ctx, q.a, svc.ID); err != nil {
		return d, err
	}
	if host, err := w.svc.ServiceHost(ctx, svc); err == nil && w.svc.Config().BaseDomain != "" {
		d.URL = w.serviceURL(host)
	}
	certificates, err := w.svc.Certificates(ctx, q.a)
	if err != nil {
		return d, err
	}
	byHost := map[string]*service.CertificateView{}
	for i := range certificates {
		byHost[certificates[i].Host] = &certificates[i]
	}
	for _, h := range svc.Hosts {
		d.Hosts = append(d.Hosts, hostView{HostClaim: h, URL: w.serviceURL(h.Host), Certificate: byHost[h.Host]})
	}
	domains, err := w.svc.ListDomains(ctx, q.a, svc.ID)
	if err != nil {
		return d, err
	}
	for _, dv := range domains {
		if dv.State == service.DomainPending {
			d.Pending = append(d.Pending, dv)
		}
	}
	return d, nil
}

// serviceURL is the address of a router host name, with the public URL's
// scheme and port (the router shares Slipway's listener).
func (w *Web) serviceURL(host string) string {
	pub, err := url.Parse(w.svc.Config().PublicURL)
	if err != nil || pub.Host == "" {
		return "http://" + host
	}
	if p := pub.Port(); p != "" {
		host += ":" + p
	}
	return pub.Scheme + "://" + host
}

func (w *Web) servicePageWith(rw http.ResponseWriter, r *http.Request, q *req, status int, formErr *slipway.Error, hook string) error {
	d, err := w.serviceData(r, q)
	if err != nil {
		return err
	}
	d.DeployHook = hook
	p := q.page(d.Service.Name, "apps", d)
	p.Error = formErr
	return w.render(rw, status, "service", p)
}

func (w *Web) servicePage(rw http.ResponseWriter, r *http.Request, q *req) error {
	return w.servicePageWith(rw, r, q, http.StatusOK, nil, "")
}

// deploymentsFragment is the deployments table's rows alone; the service
// page polls it so new deployments appear without a reload.
func (w *Web) deploymentsFragment(rw http.ResponseWriter, r *http.Request, q *req) error {
	svc, err := w.svc.ResolveService(r.Context(), q.a, r.PathValue("svc"))
	if err != nil {
		return err
	}
	deps, _, err := w.svc.ListDeployments(r.Context(), q.a, svc.ID, store.Page{Limit: 20})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := w.pages["service"].ExecuteTemplate(&buf, "deployment_rows", q.page("", "", serviceData{Service: svc, Deployments: deps})); err != nil {
		return err
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw.Header().Set("Cache-Control", "no-store")
	_, err = rw.Write(buf.Bytes())
	return err
}

// orShowOnService re-renders the service page with a refusal the user can
// act on; anything else is returned.
func (w *Web) orShowOnService(rw http.ResponseWriter, r *http.Request, q *req, err error) error {
	e, ok := slipway.AsError(err)
	if !ok || e.Code == slipway.ECodeNotFound || e.Code == slipway.ECodeForbidden {
		return err
	}
	return w.servicePageWith(rw, r, q, httpStatus(e), e, "")
}

func (w *Web) deploy(rw http.ResponseWriter, r *http.Request, q *req) error {
	in := service.DeployInput{Ref: strings.TrimSpace(r.PostFormValue("ref")), NoCache: r.PostFormValue("no_cache") == "on"}
	d, err := w.svc.Deploy(r.Context(), q.a, r.PathValue("svc"), in)
	if err != nil {
		return w.orShowOnService(rw, r, q, err)
	}
	return redirect(rw, r, orgURL(q.org.ID, "deployments", d.ID))
}

func (w *Web) redeploy(rw http.ResponseWriter, r *http.Request, q *req) error {
	d, err := w.svc.Redeploy(r.Context(), q.a, r.PathValue("svc"), r.PostFormValue("no_cache") == "on")
	if err != nil {
		return w.orShowOnService(rw, r, q, err)
	}
	return redirect(rw, r, orgURL(q.org.ID, "deployments", d.ID))
}

func (w *Web) rollback(rw http.ResponseWriter, r *http.Request, q *req) error {
	d, err := w.svc.Rollback(r.Context(), q.a, r.PathValue("svc"), r.PostFormValue("to"))
	if err != nil {
		return w.orShowOnService(rw, r, q, err)
	}
	return redirect(rw, r, orgURL(q.org.ID, "deployments", d.ID))
}

// releaseAction restarts or stops the live release (a job), then shows
// the Service again.
func (w *Web) releaseAction(action string) orgHandler {
	return func(rw http.ResponseWriter, r *http.Request, q *req) error {
		var err error
		if action == service.ActionStop {
			_, err = w.svc.StopService(r.Context(), q.a, r.PathValue("svc"))
		} else {
			_, err = w.svc.RestartService(r.Context(), q.a, r.PathValue("svc"))
		}
		if err != nil {
			return w.orShowOnService(rw, r, q, err)
		}
		return redirect(rw, r, orgURL(q.org.ID, "services", r.PathValue("svc")))
	}
}

func (w *Web) resumeAutoDeploy(rw http.ResponseWriter, r *http.Request, q *req) error {
	if _, err := w.svc.ResumeAutoDeploy(r.Context(), q.a, r.PathValue("svc")); err != nil {
		return w.orShowOnService(rw, r, q, err)
	}
	return redirect(rw, r, orgURL(q.org.ID, "services", r.PathValue("svc")))
}

func (w *Web) setVariable(rw http.ResponseWriter, r *http.Request, q *req) error {
	in := service.VariableInput{Key: strings.TrimSpace(r.PostFormValue("key")), Value: r.PostFormValue("value"), Secret: r.PostFormValue("secret") == "on"}
	if _, err := w.svc.SetVariable(r.Context(), q.a, r.PathValue("svc"), in); err != nil {
		return w.orShowOnService(rw, r, q, err)
	}
	return redirect(rw, r, orgURL(q.org.ID, "services", r.PathValue("svc"))+"#variables")
}

func (w *Web) setDomains(rw http.ResponseWriter, r *http.Request, q *req) error {
	domains := []string{}
	for _, d := range strings.Fields(strings.ReplaceAll(r.PostFormValue("domains"), ",", " ")) {
		domains = append(domains, strings.ToLower(d))
	}
	if _, err := w.svc.UpdateService(r.Context(), q.a, r.PathValue("svc"), service.ServiceInput{Domains: domains}); err != nil {
		return w.orShowOnService(rw, r, q, err)
	}
	return redirect(rw, r, orgURL(q.org.ID, "services", r.PathValue("svc"))+"#domains")
}

// setRouting saves the Service's body limit and HSTS setting.
func (w *Web) setRouting(rw http.ResponseWriter, r *http.Request, q *req) error {
	mb, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("max_body_mb")))
	if err != nil {
		return w.orShowOnService(rw, r, q, slipway.Errorf(slipway.ECodeInvalid, "largest request body: a whole number of MiB, 1 to 10240"))
	}
	hsts := r.PostFormValue("hsts") == "on"
	if _, err := w.svc.UpdateService(r.Context(), q.a, r.PathValue("svc"), service.ServiceInput{MaxBodyMB: &mb, HSTS: &hsts}); err != nil {
		return w.orShowOnService(rw, r, q, err)
	}
	return redirect(rw, r, orgURL(q.org.ID, "services", r.PathValue("svc"))+"#routing")
}

// verifyDomain checks a pending domain's DNS record; a failure is shown
// on the Service page with the record to create.
func (w *Web) verifyDomain(rw http.ResponseWriter, r *http.Request, q *req) error {
	if _, err := w.svc.VerifyDomain(r.Context(), q.a, r.PathValue("svc"), r.PathValue("domain")); err != nil {
		return w.orShowOnService(rw, r, q, err)
	}
	return redirect(rw, r, orgURL(q.org.ID, "services", r.PathValue("svc"))+"#domains")
}

// rotateDeployHook shows the new deploy-hook URL once, on the page that
// answers the rotation; it is never stored in clear.
func (w *Web) rotateDeployHook(rw http.ResponseWriter, r *http.Request, q *req) error {
	hook, err := w.svc.RotateDeployHook(r.Context(), q.a, r.PathValue("svc"))
	if err != nil {
		return w.orShowOnService(rw, r, q, err)
	}
	return w.servicePageWith(rw, r, q, http.StatusOK, nil, hook)
}

// phaseStep is one step of a deployment's progress indicator.
type phaseStep struct {
	Phase    slipway.DeploymentStatus
	State    string // done, current, pending, failed
	Duration string
}

var phaseOrder = []slipway.DeploymentStatus{slipway.DeployQueued, slipway.DeployCloning, slipway.DeployBuilding, slipway.DeployDeploying, slipway.DeployLive}

func phaseSteps(d slipway.Deployment, now time.Time) []phaseStep {
	timing := map[slipway.DeploymentStatus]slipway.PhaseTiming{}
	for _, p := range d.Phases {
		timing[p.Phase] = p
	}
	cur := -1
	for i, p := range phaseOrder {
		if p == d.Status {
			cur = i
		}
	}
	if cur < 0 { // failed, cancelled, …: the last phase that started is where it stopped
		cur = 0
		for i, p := range phaseOrder {
			if _, ok := timing[p]; ok {
				cur = i
			}
		}
	}
	reached := d.Status == slipway.DeployLive || d.Status == slipway.DeployReplaced || d.Status == slipway.DeployStopped
	steps := make([]phaseStep, len(phaseOrder))
	for i, p := range phaseOrder {
		s := phaseStep{Phase: p, State: "pending"}
		switch {
		case reached || i < cur:
			s.State = "done"
		case i == cur && d.Status.InProgress():
			s.State = "current"
		case i == cur:
			s.State = "failed"
		}
		if t, ok := timing[p]; ok && p != slipway.DeployLive {
			end := now
			if t.FinishedAt != nil {
				end = *t.FinishedAt
			}
			s.Duration = end.Sub(t.StartedAt).Round(100 * time.Millisecond).String()
		}
		steps[i] = s
	}
	return steps
}

type deploymentData struct {
	Deployment slipway.Deployment
	Service    slipway.Service
	Steps      []phaseStep
	URL        string
}

func (w *Web) deploymentPage(rw http.ResponseWriter, r *http.Request, q *req) error {
	ctx := r.Context()
	d, err := w.svc.GetDeployment(ctx, q.a, r.PathValue("dep"))
	if err != nil {
		return err
	}
	svc, err := w.svc.ResolveService(ctx, q.a, d.ServiceID)
	if err != nil {
		return err
	}
	data := deploymentData{Deployment: d, Service: svc, Steps: phaseSteps(d, w.now())}
	if host, err := w.svc.ServiceHost(ctx, svc); err == nil && w.svc.Config().BaseDomain != "" {
		data.URL = w.serviceURL(host)
	}
	return w.render(rw, http.StatusOK, "deployment", q.page("Deployment "+slipway.ShortSHA(d.CommitSHA), "apps", data))
}

// deploymentEvents streams the deployment's log and status changes as
// Server-Sent Events, with the session's Actor.
func (w *Web) deploymentEvents(rw http.ResponseWriter, r *http.Request, q *req) error {
	d, err := w.svc.GetDeployment(r.Context(), q.a, r.PathValue("dep"))
	if err != nil {
		return err
	}
	return httpapi.StreamLogs(rw, r, w.svc, q.a, d)
}

func (w *Web) cancelDeployment(rw http.ResponseWriter, r *http.Request, q *req) error {
	d, err := w.svc.CancelDeployment(r.Context(), q.a, r.PathValue("dep"))
	if err != nil {
		return err
	}
	return redirect(rw, r, orgURL(q.org.ID, "deployments", d.ID))
}
