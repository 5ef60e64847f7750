package slipway_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "slipway.dev/slipway"

// importRule forbids packages matching From (a path prefix relative to the
// module; "" is the root package) from importing packages matching any of
// Deny. docs/ARCHITECTURE.md explains each rule; this test keeps them true.
type importRule struct {
	from   string
	exact  bool // From names one package, not a subtree
	deny   []string
	reason string
}

// providerAndRuntimeImpls are named only by cmd/slipway (and tests).
var providerAndRuntimeImpls = []string{
	"internal/forge/github", "internal/forge/gitlab", "internal/forge/bitbucket", "internal/forge/azuredevops",
	"internal/forge/gitea", "internal/forge/gitgeneric", "internal/runtime/process", "internal/runtime/docker", "internal/runtime/swarm",
}

var rules = []importRule{
	{from: "", exact: true, deny: []string{"*"}, reason: "the domain package imports the standard library only"},
	{from: "internal/forge", deny: []string{"internal/store", "internal/service", "internal/jobs", "internal/deploy", "internal/httpapi", "internal/web", "internal/server", "internal/cli", "internal/webhook"},
		reason: "providers translate between Slipway and one API; they never touch storage or use cases"},
	{from: "internal/store", deny: append([]string{"internal/service", "internal/jobs", "internal/deploy", "internal/httpapi", "internal/web", "internal/server", "internal/cli", "internal/webhook"}, providerAndRuntimeImpls...),
		reason: "the store is below every use case"},
	{from: "internal/runtime", deny: []string{"internal/store", "internal/service", "internal/jobs", "internal/deploy", "internal/httpapi", "internal/web", "internal/server", "internal/forge"},
		reason: "runtimes run releases; they know nothing of Git or storage"},
	{from: "internal/service", deny: append([]string{"internal/httpapi", "internal/web", "internal/server", "internal/cli", "internal/webhook", "internal/deploy"}, providerAndRuntimeImpls...),
		reason: "use cases are called by the edges, never the reverse, and see providers only through internal/forge"},
	{from: "internal/httpapi", deny: providerAndRuntimeImpls, reason: "edges see providers and runtimes only through the use cases"},
	{from: "internal/web", deny: providerAndRuntimeImpls, reason: "edges see providers and runtimes only through the use cases"},
	{from: "internal/webhook", deny: providerAndRuntimeImpls, reason: "edges see providers and runtimes only through the use cases"},
	{from: "internal/server", deny: providerAndRuntimeImpls, reason: "cmd/slipway chooses concrete providers and runtimes"},
	{from: "internal/deploy", deny: providerAndRuntimeImpls, reason: "the pipeline runs on the Runtime interface"},
	{from: "internal/cli", deny: []string{"internal/store", "internal/server", "internal/jobs", "internal/deploy", "internal/webhook", "internal/web"},
		reason: "the CLI is a client of the API (it may share the use cases' request and response types, nothing stateful)"},
}

// TestImportRules fails when a package imports what the architecture
// forbids. Test files are exempt: tests wire real parts together.
func TestImportRules(t *testing.T) {
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "tools") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(filepath.Dir(path))
		if pkg == "." {
			pkg = ""
		}
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			checked++
			for _, r := range rules {
				if !matches(pkg, r.from, r.exact) {
					continue
				}
				for _, deny := range r.deny {
					if deny == "*" && !isStdlib(ip) || deny != "*" && (ip == module+"/"+deny || strings.HasPrefix(ip, module+"/"+deny+"/")) {
						t.Errorf("%s imports %s: %s (docs/ARCHITECTURE.md)", path, ip, r.reason)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("checked only %d imports; the walk is broken", checked)
	}
}

func matches(pkg, from string, exact bool) bool {
	if exact {
		return pkg == from
	}
	return pkg == from || strings.HasPrefix(pkg, from+"/")
}

func isStdlib(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}
