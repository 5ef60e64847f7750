// Package httpapi is Slipway's JSON API under /api/v1. Every route is
// declared once in a table (method, pattern, summary, permission, handler)
// from which the mux and the OpenAPI document are both built, so the
// document cannot drift from what is served. Handlers return errors; one
// function maps error codes to HTTP status and application/problem+json.
package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

// API serves /api/v1.
type API struct {
	svc    *service.Service
	log    *slog.Logger
	routes []route
}

// handlerFunc is an authenticated API handler.
type handlerFunc func(w http.ResponseWriter, r *http.Request, a service.Actor) error

type route struct {
	method, pattern, summary, tag string
	public                        bool // no bearer token required
	request, response             any  // example values for the OpenAPI schema
	handle                        handlerFunc
}

// New builds the API.
func New(svc *service.Service, logger *slog.Logger) *API {
	api := &API{svc: svc, log: logger}
	api.routes = append(api.table(), api.extraRoutes()...)
	return api
}

// Register mounts every route on mux.
func (api *API) Register(mux *http.ServeMux) {
	for _, rt := range api.routes {
		mux.Handle(rt.method+" "+rt.pattern, api.wrap(rt))
	}
	mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(api.OpenAPI())
	})
	// Anything else under /api/ is a JSON 404, not the dashboard.
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, api.log, slipway.Errorf(slipway.ECodeNotFound, "no API route %s %s", r.Method, r.URL.Path))
	})
}

func (api *API) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a service.Actor
		if !rt.public {
			auth := r.Header.Get("Authorization")
			token, ok := strings.CutPrefix(auth, "Bearer ")
			if !ok {
				WriteError(w, api.log, slipway.Errorf(slipway.ECodeUnauthenticated, "missing bearer token: run `slipway login`"))
				return
			}
			var err error
			if a, err = api.svc.Authenticate(r.Context(), strings.TrimSpace(token)); err != nil {
				WriteError(w, api.log, err)
				return
			}
		}
		if err := rt.handle(w, r, a); err != nil {
			WriteError(w, api.log, err)
		}
	})
}

// StatusFor maps an error code to its HTTP status. It is the only place
// that does.
func StatusFor(code slipway.ErrorCode) int {
	switch code {
	case slipway.ECodeInvalid:
		return http.StatusBadRequest
	case slipway.ECodeUnauthenticated, slipway.ECodeBadSignature:
		return http.StatusUnauthorized
	case slipway.ECodeForbidden:
		return http.StatusForbidden
	case slipway.ECodeNotFound:
		return http.StatusNotFound
	case slipway.ECodeConflict, slipway.ECodeInvalidTransition, slipway.ECodeProjectsReadOnly, slipway.ECodeHostReserved, slipway.ECodeHostTaken:
		return http.StatusConflict
	case slipway.ECodeGone:
		return http.StatusGone
	case slipway.ECodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case slipway.ECodeScopesMissing, slipway.ECodeCredentialsInvalid, slipway.ECodeRepoNotVisible, slipway.ECodeRefNotFound, slipway.ECodeDomainUnverified,
		slipway.ECodeIntegrationNeedsAttention, slipway.ECodeOutOfMemory, slipway.ECodeAddressNotAllowed:
		return http.StatusUnprocessableEntity
	case slipway.ECodeRateLimited:
		return http.StatusTooManyRequests
	case slipway.ECodeProviderUnreachable, slipway.ECodeProviderError:
		return http.StatusBadGateway
	case slipway.ECodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Problem is an RFC 9457 problem document with Slipway's stable code.
type Problem struct {
	Type    string            `json:"type"`
	Title   string            `json:"title"`
	Status  int               `json:"status"`
	Code    slipway.ErrorCode `json:"code"`
	Detail  string            `json:"detail"`
	Fix     string            `json:"fix,omitempty"`
	Details map[string]string `json:"details,omitempty"`
}

// WriteError writes err as application/problem+json. Internal errors are
// logged in full and answered with a generic message.
func WriteError(w http.ResponseWriter, log *slog.Logger, err error) {
	code := slipway.ErrorCodeOf(err)
	status := StatusFor(code)
	p := Problem{Type: "https://slipway.dev/problems/" + string(code), Title: http.StatusText(status), Status: status, Code: code,
		Detail: slipway.ErrorMessageOf(err)}
	if e, ok := slipway.AsError(err); ok {
		p.Fix, p.Details = e.Fix, e.Details
	}
	if code == slipway.ECodeInternal {
		log.Error("internal error", "err", err)
	}
	if after := p.Details["retry_after"]; code == slipway.ECodeRateLimited && after != "" {
		w.Header().Set("Retry-After", after)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// maxRequestBody caps JSON request bodies.
const maxRequestBody = 1 << 20

// decode reads a JSON body into v, refusing unknown fields and trailing
// data so typos in field names are reported, not ignored.
func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		return slipway.Errorf(slipway.ECodeInvalid, "reading request body: %v", err)
	}
	if len(body) > maxRequestBody {
		return slipway.Errorf(slipway.ECodeTooLarge, "request body is larger than %d bytes", maxRequestBody)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return slipway.Errorf(slipway.ECodeInvalid, "request body is not valid JSON (at byte %d)", se.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return slipway.Errorf(slipway.ECodeInvalid, "request body is not valid JSON (it ends before the value is complete)")
		case errors.As(err, &te):
			return slipway.Errorf(slipway.ECodeInvalid, "field %q must be %s", te.Field, te.Type)
		default:
			return slipway.Errorf(slipway.ECodeInvalid, "request body: %v", err)
		}
	}
	if dec.More() {
		return slipway.Errorf(slipway.ECodeInvalid, "request body has data after the JSON value")
	}
	return nil
}

// page reads ?limit=&offset=.
func page(r *http.Request) (store.Page, error) {
	var p store.Page
	for name, dst := range map[string]*int{"limit": &p.Limit, "offset": &p.Offset} {
		if v := r.URL.Query().Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return p, slipway.Errorf(slipway.ECodeInvalid, "%s must be a non-negative integer", name)
			}
			*dst = n
		}
	}
	if p.Limit > 200 {
		p.Limit = 200
	}
	return p, nil
}

// List is the envelope of every list response.
type List[T any] struct {
	Items  []T `json:"items"`
	Total  int `json:"total"`
	Limit  int `json:"limit"`
	Offset int `json:"offset"`
}

func listOf[T any](items []T, total int, p store.Page) List[T] {
	if items == nil {
		items = []T{}
	}
	limit := p.Limit
	if limit == 0 {
		limit = 50
	}
	return List[T]{Items: items, Total: total, Limit: limit, Offset: p.Offset}
}
