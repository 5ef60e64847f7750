package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

const (
	// sessionTTL is how long a session lives without use; every use
	// slides it forward (at most once per sessionRefreshEvery, so a page
	// full of polling does not rewrite the row each second).
	sessionTTL          = 12 * time.Hour
	sessionRefreshEvery = 5 * time.Minute
	csrfField           = "csrf"
)

// session is a signed-in browser: the stored row plus the raw cookie value
// (needed to re-issue the cookie when the expiry slides).
type session struct {
	store.Session
	raw string
}

func (w *Web) cookieName() string {
	if w.opts.SecureCookies {
		return "__Host-slipway_session" // Secure, Path=/, no Domain: cannot be set by a sibling host
	}
	return "slipway_session"
}

func (w *Web) setCookie(rw http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(rw, &http.Cookie{Name: w.cookieName(), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: w.opts.SecureCookies, SameSite: http.SameSiteLaxMode})
}

func randomToken() string {
	b := make([]byte, 32) // 256 bits
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// startSession stores a new session for user in org and sets its cookie.
func (w *Web) startSession(r *http.Request, rw http.ResponseWriter, userID, orgID string) error {
	raw := randomToken()
	now := w.now().UTC()
	s := store.Session{IDHash: service.HashToken(raw), UserID: userID, OrgID: orgID, CSRFToken: randomToken(),
		ExpiresAt: now.Add(sessionTTL), CreatedAt: now}
	if err := w.svc.Store().CreateSession(r.Context(), s); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	w.setCookie(rw, raw, int(sessionTTL.Seconds()))
	return nil
}

// loadSession returns the request's live session, or nil. An expired
// session is deleted.
func (w *Web) loadSession(r *http.Request) (*session, error) {
	c, err := r.Cookie(w.cookieName())
	if err != nil || c.Value == "" {
		return nil, nil
	}
	s, err := w.svc.Store().LookupSession(r.Context(), service.HashToken(c.Value))
	if slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	if !s.ExpiresAt.After(w.now()) {
		_ = w.svc.Store().DeleteSession(r.Context(), s.IDHash)
		return nil, nil
	}
	return &session{Session: s, raw: c.Value}, nil
}

// saveSession rewrites a session row (the store has no update: a session
// is replaced under the same id hash in one transaction) with a fresh
// expiry, and re-issues the cookie.
func (w *Web) saveSession(r *http.Request, rw http.ResponseWriter, s *session) error {
	s.ExpiresAt = w.now().UTC().Add(sessionTTL)
	err := w.svc.Store().InTx(r.Context(), func(tx *store.Tx) error {
		if err := tx.DeleteSession(r.Context(), s.IDHash); err != nil {
			return err
		}
		return tx.CreateSession(r.Context(), s.Session)
	})
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	w.setCookie(rw, s.raw, int(sessionTTL.Seconds()))
	return nil
}

// slide extends the session's expiry when it was last extended more than
// sessionRefreshEvery ago.
func (w *Web) slide(r *http.Request, rw http.ResponseWriter, s *session) error {
	if s.ExpiresAt.Sub(w.now()) > sessionTTL-sessionRefreshEvery {
		return nil
	}
	return w.saveSession(r, rw, s)
}

// req is a signed-in request: its session and, under /orgs/{org}, the
// organisation and the Actor every use case is called with.
type req struct {
	s    *session
	a    service.Actor
	org  slipway.Organisation
	orgs []slipway.Organisation
}

func (q *req) page(title, section string, data any) pageData {
	p := pageData{Title: title, Section: section, Session: q.s, Orgs: q.orgs, Actor: q.a, Data: data}
	if q.org.ID != "" {
		org := q.org
		p.Org = &org
	}
	return p
}

type (
	publicHandler func(rw http.ResponseWriter, r *http.Request) error
	orgHandler    func(rw http.ResponseWriter, r *http.Request, q *req) error
)

func (w *Web) public(h publicHandler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		securityHeaders(rw.Header())
		if err := w.xorigin.Check(r); err != nil {
			w.errorPage(rw, r, pageData{}, slipway.Errorf(slipway.ECodeForbidden, "this form was sent from another site").WithFix("open Slipway's own page and send the form from there"))
			return
		}
		if err := h(rw, r); err != nil {
			s, _ := w.loadSession(r)
			w.errorPage(rw, r, pageData{Session: s}, err)
		}
	})
}

// signedIn requires a session (redirecting to the sign-in page otherwise)
// and a valid CSRF token on POST.
func (w *Web) signedIn(h orgHandler) http.Handler {
	return w.withSession(false, h)
}

// inOrg is signedIn plus the organisation named in the URL: a user who
// is not a member gets 404, exactly like a missing organisation.
func (w *Web) inOrg(h orgHandler) http.Handler {
	return w.withSession(true, h)
}

func (w *Web) withSession(needOrg bool, h orgHandler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		securityHeaders(rw.Header())
		q := &req{}
		err := func() error {
			s, err := w.loadSession(r)
			if err != nil {
				return err
			}
			if s == nil {
				if r.Method == http.MethodGet {
					return redirect(rw, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()))
				}
				return slipway.Errorf(slipway.ECodeUnauthenticated, "your session has expired").WithFix("sign in again, then repeat what you were doing")
			}
			q.s = s
			if err := w.xorigin.Check(r); err != nil {
				return slipway.Errorf(slipway.ECodeForbidden, "this form was sent from another site").WithFix("open Slipway's own page and send the form from there")
			}
			if r.Method == http.MethodPost && !validCSRF(r, s.CSRFToken) {
				return slipway.Errorf(slipway.ECodeForbidden, "the form's security token is missing or out of date").WithFix("reload the page and send the form again")
			}
			if err := w.slide(r, rw, s); err != nil {
				return err
			}
			if q.orgs, err = w.svc.ListOrganisations(r.Context(), service.Actor{UserID: s.UserID}); err != nil {
				return err
			}
			if needOrg {
				orgID := r.PathValue("org")
				a, err := w.svc.ActorFor(r.Context(), orgID, s.UserID)
				if err != nil {
					return slipway.NotFound("organisation", orgID)
				}
				q.a = a
				for _, o := range q.orgs {
					if o.ID == orgID {
						q.org = o
					}
				}
				if s.OrgID != orgID { // the URL's organisation becomes the current one
					s.OrgID = orgID
					if err := w.saveSession(r, rw, s); err != nil {
						return err
					}
				}
			} else if s.OrgID != "" {
				if a, err := w.svc.ActorFor(r.Context(), s.OrgID, s.UserID); err == nil {
					q.a = a
				}
			}
			return h(rw, r, q)
		}()
		if err != nil {
			w.errorPage(rw, r, q.page("", "", nil), err)
		}
	})
}

func validCSRF(r *http.Request, want string) bool {
	got := r.PostFormValue(csrfField)
	if got == "" {
		got = r.Header.Get("X-CSRF-Token")
	}
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// localPath returns next when it is a path on this site, "" otherwise, so
// the sign-in redirect cannot send anyone elsewhere. Browsers drop tabs and
// newlines from a Location, read a backslash as a slash and take "//host"
// as another site, so those are refused outright, in the value and in
// every percent-decoded form of it (a path that needs them encoded has no
// business in a sign-in redirect).
func localPath(next string) string {
	decoded := next
	for range 4 {
		if !plainLocalPath(decoded) {
			return ""
		}
		u, err := url.Parse(decoded)
		if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
			return ""
		}
		again, err := url.PathUnescape(decoded)
		if err != nil {
			return ""
		}
		if again == decoded {
			return next
		}
		decoded = again
	}
	return "" // encoded more deeply than any link of ours
}

// plainLocalPath: starts with one slash, and holds only printable ASCII
// other than the backslash.
func plainLocalPath(p string) bool {
	if len(p) == 0 || p[0] != '/' || len(p) > 1 && (p[1] == '/' || p[1] == '\\') {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c > 0x7e || c == '\\' {
			return false
		}
	}
	return true
}

func orgURL(orgID string, parts ...string) string {
	return "/orgs/" + url.PathEscape(orgID) + "/" + strings.Join(parts, "/")
}
