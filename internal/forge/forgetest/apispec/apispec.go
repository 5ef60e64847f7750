// Package apispec checks provider clients and their test fakes against
// the providers' own published API descriptions, so a fake cannot drift
// from the real API. A provider test loads its trimmed copy of the
// document (testdata/openapi.json, made by Trim from the published file)
// and sends every request through a Transport: the request is validated
// (method, path template, server host, query, body; deprecated operations
// fail) before it reaches the fake, and the fake's answer is validated
// against the response schema before the client sees it.
//
// It is test support: only _test.go files import it.
package apispec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Allowed is an operation a provider documents only in prose, absent from
// its machine-readable description. Every entry names the page it was
// built from.
type Allowed struct {
	Method string
	Path   string // a regular expression over the request's escaped URL path
	Page   string // the documentation page the client follows
}

// Deviation is a field where the published description is known to differ
// from what the real API answers (GitLab's generated document types hook
// ids as strings; the API and its own prose pages send integers). The
// fake answers like the real API and the check forgives exactly that
// field of that operation's response. Every entry names its evidence.
type Deviation struct {
	Op    string // "POST /api/v4/projects/{id}/hooks"
	Field string // a JSON pointer into the response body; * matches one segment
	Why   string // what the real API does instead, and the page that says so
}

// Envelope says that list answers wrap the array the description shows in
// an object member (Azure DevOps answers {"count": n, "value": [...]}
// where its descriptions show the bare array); that member is validated
// against the array schema.
type Envelope struct {
	Member string
	Why    string
}

// Option is an Allowed operation, a Deviation or an Envelope.
type Option interface{ apispecOption() }

func (Allowed) apispecOption()   {}
func (Deviation) apispecOption() {}
func (Envelope) apispecOption()  {}

// Document is one provider's API description, ready to route requests.
type Document struct {
	Name   string
	Source Source
	doc    *openapi3.T
	router routers.Router
	allow  []allowed
	devs   []Deviation
	// envelope is the member list answers wrap their array in (Envelope).
	envelope string
	ops      []Op
	server   *url.URL // the document's first server, for Transport.AnyHost
	// aliases maps a route made without an optional path segment to the
	// documented path template (routeOptionalSegments).
	aliases map[string]string

	mu   sync.Mutex
	used map[string]bool // Op.String() or "allowed: METHOD PATH", by every transport
}

type allowed struct {
	Allowed
	re *regexp.Regexp
}

// Load reads a trimmed document (OpenAPI 3, or Swagger 2 converted to it).
func Load(t testing.TB, path string, opts ...Option) *Document {
	t.Helper()
	d, err := LoadFile(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// LoadFile is Load for a package-level document (TestMain checks what it
// saw exercised: Unused).
func LoadFile(path string, opts ...Option) (*Document, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("apispec: %w", err)
	}
	raw = bytes.TrimPrefix(raw, bom)
	var head struct {
		Swagger  string              `json:"swagger"`
		Source   Source              `json:"x-slipway-source"`
		Paths    map[string]pathJSON `json:"paths"`
		Webhooks map[string]pathJSON `json:"webhooks"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("apispec: %s: %w", path, err)
	}
	var doc *openapi3.T
	if head.Swagger != "" {
		var d2 openapi2.T
		if err := json.Unmarshal(raw, &d2); err != nil {
			return nil, fmt.Errorf("apispec: %s: %w", path, err)
		}
		if doc, err = openapi2conv.ToV3(&d2); err != nil {
			return nil, fmt.Errorf("apispec: convert %s: %w", path, err)
		}
	} else if doc, err = openapi3.NewLoader().LoadFromData(raw); err != nil {
		return nil, fmt.Errorf("apispec: %s: %w", path, err)
	}
	aliases := routeOptionalSegments(doc)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("apispec: route %s: %w", path, err)
	}
	d := &Document{Name: doc.Info.Title, Source: head.Source, doc: doc, router: router, used: map[string]bool{}, aliases: aliases}
	if len(doc.Servers) > 0 {
		// Server variables ({protocol}://{hostname}/api/v3) take their
		// defaults here; routing matches any value.
		raw := doc.Servers[0].URL
		for name, v := range doc.Servers[0].Variables {
			raw = strings.ReplaceAll(raw, "{"+name+"}", v.Default)
		}
		if d.server, err = url.Parse(raw); err != nil {
			return nil, fmt.Errorf("apispec: %s server: %w", path, err)
		}
	}
	for _, o := range opts {
		switch o := o.(type) {
		case Allowed:
			d.allow = append(d.allow, allowed{Allowed: o, re: regexp.MustCompile("^" + o.Path + "$")})
		case Deviation:
			d.devs = append(d.devs, o)
		case Envelope:
			d.envelope = o.Member
		}
	}
	for p, item := range head.Paths {
		for m := range item {
			if m != "parameters" {
				d.ops = append(d.ops, Op{Method: strings.ToUpper(m), Path: p})
			}
		}
	}
	for name := range head.Webhooks {
		d.ops = append(d.ops, Op{Method: "WEBHOOK", Path: name})
	}
	sort.Slice(d.ops, func(i, j int) bool { return d.ops[i].String() < d.ops[j].String() })
	return d, nil
}

type pathJSON map[string]json.RawMessage

// routeOptionalSegments adds, for every path parameter the document marks
// x-ms-required: false (Azure DevOps' {project}), the same operations
// without that segment: the API answers them at organisation level, and
// that is the form the documents describe with the flag. It returns the
// added paths with the documented path each stands for.
func routeOptionalSegments(doc *openapi3.T) map[string]string {
	aliases := map[string]string{}
	for path, item := range doc.Paths.Map() {
		optional := ""
		for _, op := range item.Operations() {
			for _, p := range append(append(openapi3.Parameters{}, item.Parameters...), op.Parameters...) {
				if p.Value != nil && p.Value.In == "path" && p.Value.Extensions["x-ms-required"] == false {
					optional = p.Value.Name
				}
			}
		}
		short := strings.Replace(path, "/{"+optional+"}", "", 1)
		if optional == "" || short == path || doc.Paths.Value(short) != nil {
			continue
		}
		without := func(ps openapi3.Parameters) openapi3.Parameters {
			var out openapi3.Parameters
			for _, p := range ps {
				if p.Value == nil || p.Value.In != "path" || p.Value.Name != optional {
					out = append(out, p)
				}
			}
			return out
		}
		alias := &openapi3.PathItem{Parameters: without(item.Parameters), Servers: item.Servers}
		for method, op := range item.Operations() {
			cp := *op
			cp.Parameters = without(op.Parameters)
			alias.SetOperation(method, &cp)
		}
		doc.Paths.Set(short, alias)
		aliases[short] = path
	}
	return aliases
}

// documented is the document's path template for a routed path.
func (d *Document) documented(route string) string {
	if p, ok := d.aliases[route]; ok {
		return p
	}
	return route
}

// Operations lists the document's operations, sorted.
func (d *Document) Operations() []Op { return append([]Op(nil), d.ops...) }

// Operation returns the document's description of op (summary,
// operationId, deprecation), or nil.
func (d *Document) Operation(op Op) *openapi3.Operation {
	item := d.doc.Paths.Find(op.Path)
	if item == nil {
		return nil
	}
	return item.GetOperation(op.Method)
}

// Transport is an http.RoundTripper that validates every request against
// a Document and delivers it to a local fake instead of the real host.
// Failures are test errors; the request then gets a 599 so the client
// fails too and nothing passes by accident.
type Transport struct {
	t      testing.TB
	docs   []*Document // a provider may publish one document per API area
	target *url.URL
	next   http.RoundTripper
	// AnyHost matches requests as if sent to the document's server, for
	// providers that run at an address of the user's choosing (GitLab
	// self-managed, Azure DevOps Server): method, path, query and body are
	// still checked. Off, the request's own scheme and host must be the
	// document's (Bitbucket Cloud).
	AnyHost bool
}

// NewTransport routes every validated request to target (an httptest
// server's URL), keeping the original Host so the fake can check it.
func (d *Document) NewTransport(t testing.TB, target string) *Transport {
	return NewTransport(t, target, d)
}

// NewTransport is Document.NewTransport for a provider whose API is
// described by several documents (Azure DevOps: Git, Service Hooks): a
// request must match an operation of one of them.
func NewTransport(t testing.TB, target string, docs ...*Document) *Transport {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("apispec: target %q: %v", target, err)
	}
	return &Transport{t: t, docs: docs, target: u, next: http.DefaultTransport}
}

// find routes req to an operation of one of the documents.
func (tr *Transport) find(req *http.Request) (*Document, *routers.Route, map[string]string, *http.Request, error) {
	var firstErr error
	for _, d := range tr.docs {
		check := req.Clone(req.Context())
		if tr.AnyHost && d.server != nil {
			check.URL.Scheme, check.URL.Host, check.Host = d.server.Scheme, d.server.Host, d.server.Host
		}
		route, params, err := d.router.FindRoute(check)
		if err == nil {
			return d, route, params, check, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, nil, nil, nil, firstErr
}

// Client returns an *http.Client whose every request goes through tr.
func (tr *Transport) Client() *http.Client { return &http.Client{Transport: tr} }

// Unused lists the document's operations and allow-list entries no
// transport has seen a request for.
func (d *Document) Unused() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, op := range d.ops {
		if !d.used[op.String()] {
			out = append(out, op.String())
		}
	}
	for _, a := range d.allow {
		if k := "allowed: " + a.Method + " " + a.Path; !d.used[k] {
			out = append(out, k)
		}
	}
	return out
}

func (tr *Transport) fail(req *http.Request, format string, args ...any) (*http.Response, error) {
	tr.t.Helper()
	msg := fmt.Sprintf(format, args...)
	tr.t.Errorf("apispec %s: %s %s: %s", tr.docs[0].Name, req.Method, req.URL.Redacted(), msg)
	return &http.Response{
		StatusCode: 599, Status: "599 not in the published API description",
		Header: http.Header{"Content-Type": {"text/plain"}}, Body: io.NopCloser(strings.NewReader(msg)), Request: req,
	}, nil
}

// RoundTrip implements http.RoundTripper.
func (tr *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	tr.t.Helper()
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	doc, route, params, check, err := tr.find(req)
	var input *openapi3filter.RequestValidationInput
	switch {
	case err == nil:
		check.Body = io.NopCloser(bytes.NewReader(body))
		op := Op{Method: req.Method, Path: doc.documented(route.Path)}
		if route.Operation.Deprecated {
			return tr.fail(req, "%s is deprecated in the published description", op)
		}
		input = &openapi3filter.RequestValidationInput{
			Request: check, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
		}
		if err := openapi3filter.ValidateRequest(context.Background(), input); err != nil {
			return tr.fail(req, "request does not match %s: %v", op, err)
		}
		doc.mark(op.String())
	default:
		d, a, ok := tr.allowed(req)
		if !ok {
			return tr.fail(req, "no operation of the published description matches (%v)", err)
		}
		d.mark("allowed: " + a.Method + " " + a.Path)
	}

	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.Host = req.URL.Host
	out.URL.Scheme, out.URL.Host = tr.target.Scheme, tr.target.Host
	resp, err := tr.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	resp.Request = req
	if input == nil {
		return resp, nil // allow-listed: there is no schema to check against
	}
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	if err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: input, Status: resp.StatusCode, Header: resp.Header,
		Body:    io.NopCloser(bytes.NewReader(doc.unwrap(route, resp.StatusCode, raw))),
		Options: &openapi3filter.Options{MultiError: true},
	}); err != nil && !doc.forgiven(req.Method+" "+doc.documented(route.Path), err) {
		tr.t.Errorf("apispec %s: the fake's %d answer to %s %s does not match the description: %v", doc.Name, resp.StatusCode, req.Method, route.Path, err)
	}
	return resp, nil
}

// unwrap returns the envelope member of a list answer whose documented
// schema is an array, and any other answer as it is.
func (d *Document) unwrap(route *routers.Route, status int, raw []byte) []byte {
	if d.envelope == "" || route.Operation.Responses == nil {
		return raw
	}
	ref := route.Operation.Responses.Status(status)
	if ref == nil || ref.Value == nil {
		return raw
	}
	mt := ref.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil || !mt.Schema.Value.Type.Is("array") {
		return raw
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return raw
	}
	if member, ok := obj[d.envelope]; ok {
		return member
	}
	return raw
}

// forgiven reports whether every schema failure in err is a listed
// deviation of op.
func (d *Document) forgiven(op string, err error) bool {
	var re *openapi3filter.ResponseError
	if !errors.As(err, &re) || re.Err == nil {
		return false
	}
	fields := schemaFailures(re.Err, nil)
	if len(fields) == 0 {
		return false
	}
	for _, f := range fields {
		if !slices.ContainsFunc(d.devs, func(dv Deviation) bool {
			ok, _ := path.Match(dv.Field, f)
			return dv.Op == op && ok
		}) {
			return false
		}
	}
	return true
}

// schemaFailures lists the JSON pointers of the innermost schema errors in
// err (under prefix): an allOf or oneOf failure is the failure of one of
// its parts.
func schemaFailures(err error, prefix []string) []string {
	var multi openapi3.MultiError
	var se *openapi3.SchemaError
	switch {
	case errors.As(err, &multi):
		var out []string
		for _, inner := range multi {
			out = append(out, schemaFailures(inner, prefix)...)
		}
		return out
	case errors.As(err, &se):
		at := append(append([]string(nil), prefix...), se.JSONPointer()...)
		var innerSE *openapi3.SchemaError
		var innerMulti openapi3.MultiError
		// An Origin that is itself a schema failure (allOf, oneOf, an
		// item) is where the value failed; any other Origin (a format
		// check) only explains this one.
		if se.Origin != nil && (errors.As(se.Origin, &innerSE) || errors.As(se.Origin, &innerMulti)) {
			return schemaFailures(se.Origin, at)
		}
		return []string{"/" + strings.Join(at, "/")}
	}
	return []string{"(not a schema error: " + err.Error() + ")"}
}

func (d *Document) mark(k string) {
	d.mu.Lock()
	d.used[k] = true
	d.mu.Unlock()
}

func (tr *Transport) allowed(req *http.Request) (*Document, Allowed, bool) {
	for _, d := range tr.docs {
		for _, a := range d.allow {
			if a.Method == req.Method && a.re.MatchString(req.URL.EscapedPath()) {
				return d, a.Allowed, true
			}
		}
	}
	return nil, Allowed{}, false
}

// ValidateWebhook checks a delivery's body against the request schema of
// the document's webhook name (OpenAPI 3.1 webhooks: GitHub's "push",
// "installation-created", …).
func (d *Document) ValidateWebhook(name string, body []byte) error {
	item := d.doc.Webhooks[name]
	if item == nil || item.Post == nil || item.Post.RequestBody == nil || item.Post.RequestBody.Value == nil {
		return fmt.Errorf("apispec: %s has no webhook %q", d.Name, name)
	}
	mt := item.Post.RequestBody.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return fmt.Errorf("apispec: webhook %q has no JSON schema", name)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	d.mark(Op{Method: "WEBHOOK", Path: name}.String())
	return mt.Schema.Value.VisitJSON(v, openapi3.MultiErrors())
}

// ValidateSchema checks a JSON value against the named component schema
// ("#/components/schemas/…") of the document.
func (d *Document) ValidateSchema(ref string, value []byte) error {
	name, ok := strings.CutPrefix(ref, "#/components/schemas/")
	if !ok {
		return fmt.Errorf("apispec: %q is not a component schema", ref)
	}
	s := d.doc.Components.Schemas[name]
	if s == nil || s.Value == nil {
		return fmt.Errorf("apispec: %s has no schema %s", d.Name, name)
	}
	var v any
	if err := json.Unmarshal(value, &v); err != nil {
		return err
	}
	return s.Value.VisitJSON(v, openapi3.MultiErrors())
}

// Refresh keeps a provider's trimmed document in step with the operations
// its client calls. With SLIPWAY_PROVIDER_SPECS naming the directory of
// the published files (their layout as published: bitbucket/swagger.v3.json,
// …), it rewrites trimmed from published; otherwise it fails when the
// trimmed document's operations differ from ops, naming the command that
// regenerates it.
func Refresh(t testing.TB, trimmed, published string, src Source, ops []Op) {
	t.Helper()
	if dir := os.Getenv("SLIPWAY_PROVIDER_SPECS"); dir != "" {
		full, err := os.ReadFile(dir + "/" + published)
		if err != nil {
			t.Fatal(err)
		}
		src.File = published
		out, err := Trim(full, src, ops)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(trimmed, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := Load(t, trimmed)
	want := map[string]bool{}
	for _, op := range ops {
		want[Op{Method: strings.ToUpper(op.Method), Path: op.Path}.String()] = true
	}
	var got []string
	for _, op := range d.Operations() {
		got = append(got, op.String())
		if !want[op.String()] {
			t.Errorf("%s has %s, which the client no longer calls", trimmed, op)
		}
		delete(want, op.String())
	}
	for op := range want {
		t.Errorf("%s lacks %s", trimmed, op)
	}
	if t.Failed() {
		t.Logf("regenerate: SLIPWAY_PROVIDER_SPECS=/path/to/specs go test -run '^%s$' (in this package)", t.Name())
	}
}

// MustLoad is LoadFile for a package-level document; it panics when the
// file is missing or invalid, which fails the package's tests.
func MustLoad(path string, opts ...Option) *Document {
	d, err := LoadFile(path, opts...)
	if err != nil {
		panic(err)
	}
	return d
}

// Main runs a provider package's tests and then, on a full run (no -run
// filter) that passed, fails when an operation or allow-list entry of doc
// was never exercised: the trimmed document must not list what the
// client no longer calls, nor the tests skip what it does.
func Main(m *testing.M, docs ...*Document) {
	code := m.Run()
	if code == 0 && flag.Lookup("test.run").Value.String() == "" {
		for _, doc := range docs {
			for _, op := range doc.Unused() {
				fmt.Fprintf(os.Stderr, "FAIL: no test exercises %s of %s %s\n", op, doc.Name, doc.doc.Info.Version)
				code = 1
			}
		}
	}
	os.Exit(code)
}

// Recorder is a testing.TB that collects a Transport's failures instead
// of failing the test, so a test can assert that a request was refused.
type Recorder struct {
	testing.TB
	Errors []string
}

// Errorf records a failure.
func (r *Recorder) Errorf(format string, args ...any) {
	r.Errors = append(r.Errors, fmt.Sprintf(format, args...))
}

// Helper is a no-op.
func (r *Recorder) Helper() {}

// OperationsMarkdown lists a document's operations as Markdown table rows:
// method and path, the document's operationId, and its summary.
func (d *Document) OperationsMarkdown() string {
	var b strings.Builder
	for _, op := range d.ops {
		id, summary := "", ""
		if op.Method == "WEBHOOK" {
			if item := d.doc.Webhooks[op.Path]; item != nil && item.Post != nil {
				id, summary = item.Post.OperationID, firstLine(item.Post.Summary)
			}
		} else if o := d.Operation(op); o != nil {
			id, summary = o.OperationID, firstLine(o.Summary)
		}
		fmt.Fprintf(&b, "| `%s %s` | %s | %s |\n", op.Method, op.Path, id, strings.ReplaceAll(summary, "|", "\\|"))
	}
	return b.String()
}

// firstLine is a summary's first sentence.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i+1]
	}
	return strings.TrimSpace(s)
}

// Title is the document's info.title and info.version.
func (d *Document) Title() string { return d.doc.Info.Title + " " + d.doc.Info.Version }
