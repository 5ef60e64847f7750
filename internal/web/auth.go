package web

import (
	"net/http"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
)

// home sends a signed-in user to their current organisation and everyone
// else to the sign-in page.
func (w *Web) home(rw http.ResponseWriter, r *http.Request) error {
	s, err := w.loadSession(r)
	if err != nil {
		return err
	}
	if s == nil {
		return redirect(rw, r, "/login")
	}
	if s.OrgID == "" {
		orgs, err := w.svc.ListOrganisations(r.Context(), service.Actor{UserID: s.UserID})
		if err != nil {
			return err
		}
		if len(orgs) == 0 {
			if invs, err := w.svc.MyInvitations(r.Context(), s.UserID); err == nil && len(invs) > 0 {
				return redirect(rw, r, "/invitations")
			}
			return slipway.Errorf(slipway.ECodeNotFound, "you are not a member of any organisation").WithFix("ask an administrator to add you to one")
		}
		s.OrgID = orgs[0].ID
	}
	return redirect(rw, r, orgURL(s.OrgID, "apps"))
}

type loginData struct {
	Email string
	Next  string
}

func (w *Web) loginPage(rw http.ResponseWriter, r *http.Request) error {
	return w.render(rw, http.StatusOK, "login", pageData{Title: "Sign in", Data: loginData{Next: localPath(r.URL.Query().Get("next"))}})
}

func (w *Web) login(rw http.ResponseWriter, r *http.Request) error {
	email, password := r.PostFormValue("email"), r.PostFormValue("password")
	next := localPath(r.PostFormValue("next"))
	in := service.SignIn{Email: email, Password: password, ClientAddr: w.opts.ClientAddr.Of(r)}
	if c, err := r.Cookie(w.deviceCookieName()); err == nil {
		in.DeviceToken = c.Value
	}
	u, device, err := w.svc.Login(r.Context(), in)
	if err != nil {
		e, ok := slipway.AsError(err)
		if !ok {
			return err
		}
		fix := "check the address and password; the first administrator's password is in the data directory's admin-password file"
		if e.Code == slipway.ECodeRateLimited {
			rw.Header().Set("Retry-After", e.Details["retry_after"])
			fix = e.Fix
		}
		e = &slipway.Error{Code: e.Code, Message: e.Message, Fix: fix}
		return w.render(rw, httpStatus(e), "login", pageData{Title: "Sign in", Error: e, Data: loginData{Email: email, Next: next}})
	}
	orgs, err := w.svc.ListOrganisations(r.Context(), service.Actor{UserID: u.ID})
	if err != nil {
		return err
	}
	orgID := ""
	if len(orgs) > 0 {
		orgID = orgs[0].ID
	}
	if err := w.startSession(r, rw, u.ID, orgID); err != nil {
		return err
	}
	w.setDeviceCookie(rw, device)
	if next != "" {
		return redirect(rw, r, next)
	}
	if r.PostFormValue("next") != "" {
		return redirect(rw, r, "/") // a refused next= lands on the home page, never elsewhere
	}
	if invs, err := w.svc.MyInvitations(r.Context(), u.ID); err == nil && len(invs) > 0 {
		return redirect(rw, r, "/invitations")
	}
	if orgID == "" {
		return redirect(rw, r, "/")
	}
	return redirect(rw, r, orgURL(orgID, "apps"))
}

type invitationsData struct {
	Invitations []slipway.Invitation
}

func (w *Web) invitationsPage(rw http.ResponseWriter, r *http.Request, q *req) error {
	invs, err := w.svc.MyInvitations(r.Context(), q.s.UserID)
	if err != nil {
		return err
	}
	return w.render(rw, http.StatusOK, "invitations", q.page("Invitations", "invitations", invitationsData{Invitations: invs}))
}

// answerInvitation accepts or declines one of the signed-in user's own
// invitations (the use case finds no one else's).
func (w *Web) answerInvitation(accept bool) orgHandler {
	return func(rw http.ResponseWriter, r *http.Request, q *req) error {
		inv, err := w.svc.AnswerInvitation(r.Context(), q.s.UserID, r.PathValue("inv"), accept)
		if err != nil {
			return err
		}
		if accept {
			return redirect(rw, r, orgURL(inv.OrgID, "apps"))
		}
		return redirect(rw, r, "/invitations")
	}
}

func (w *Web) logout(rw http.ResponseWriter, r *http.Request, q *req) error {
	if err := w.svc.Store().DeleteSession(r.Context(), q.s.IDHash); err != nil {
		return err
	}
	w.setCookie(rw, "", -1)
	return redirect(rw, r, "/login")
}

// switchOrg makes another organisation of the user's the current one.
func (w *Web) switchOrg(rw http.ResponseWriter, r *http.Request, q *req) error {
	orgID := r.PostFormValue("org")
	if _, err := w.svc.ActorFor(r.Context(), orgID, q.s.UserID); err != nil {
		return slipway.NotFound("organisation", orgID)
	}
	q.s.OrgID = orgID
	if err := w.saveSession(r, rw, q.s); err != nil {
		return err
	}
	return redirect(rw, r, orgURL(orgID, "apps"))
}

func (w *Web) orgHome(rw http.ResponseWriter, r *http.Request, q *req) error {
	return redirect(rw, r, orgURL(q.org.ID, "apps"))
}

// The device cookie marks a browser that signed in to an account before;
// it exempts that browser from the account's failed sign-in limit, so
// someone guessing the password cannot lock the owner out.
const deviceCookieTTL = 30 * 24 * 3600

func (w *Web) deviceCookieName() string {
	if w.opts.SecureCookies {
		return "__Host-slipway_device"
	}
	return "slipway_device"
}

func (w *Web) setDeviceCookie(rw http.ResponseWriter, token string) {
	http.SetCookie(rw, &http.Cookie{Name: w.deviceCookieName(), Value: token, Path: "/", MaxAge: deviceCookieTTL,
		HttpOnly: true, Secure: w.opts.SecureCookies, SameSite: http.SameSiteLaxMode})
}
