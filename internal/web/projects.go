package web

import (
	"net/http"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
)

// projectsData is the legacy Projects page.
type projectsData struct {
	Projects []service.ProjectDetail
}

// projectsPage lists the legacy Projects still waiting for migration, with
// their Services (which keep deploying until they move).
func (w *Web) projectsPage(rw http.ResponseWriter, r *http.Request, q *req) error {
	list, err := w.svc.ListProjects(r.Context(), q.a, false)
	if err != nil {
		return err
	}
	var d projectsData
	for _, p := range list {
		detail, err := w.svc.GetProject(r.Context(), q.a, p.ID)
		if err != nil {
			return err
		}
		d.Projects = append(d.Projects, detail)
	}
	return w.render(rw, http.StatusOK, "projects", q.page("Legacy projects", "projects", d))
}

// projectPage shows one legacy Project; a migrated one redirects
// permanently to the Application it became, so old links keep working.
func (w *Web) projectPage(rw http.ResponseWriter, r *http.Request, q *req) error {
	detail, err := w.svc.GetProject(r.Context(), q.a, r.PathValue("project"))
	if appID, moved := service.ProjectMovedTo(err); moved {
		http.Redirect(rw, r, orgURL(q.org.ID, "apps", appID), http.StatusPermanentRedirect)
		return nil
	}
	if err != nil {
		return err
	}
	return w.render(rw, http.StatusOK, "projects", q.page(detail.Name, "projects", projectsData{Projects: []service.ProjectDetail{detail}}))
}

// legacyProjectURL answers the pre-organisation URL /projects/{id} by
// finding the Project in the signed-in user's current organisation.
func (w *Web) legacyProjectURL(rw http.ResponseWriter, r *http.Request, q *req) error {
	if q.s.OrgID == "" {
		return slipway.NotFound("project", r.PathValue("project"))
	}
	http.Redirect(rw, r, orgURL(q.s.OrgID, "projects", r.PathValue("project")), http.StatusPermanentRedirect)
	return nil
}
