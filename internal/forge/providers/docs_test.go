package providers_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slipway.dev/slipway/internal/forge/forgetest/apispec"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/PROVIDERS.md")

// published are the trimmed descriptions each provider's tests validate
// against, in the order docs/PROVIDERS.md lists them.
var published = []struct{ provider, file string }{
	{"GitHub REST (GHES 3.17; github.com has the same operations)", "../github/testdata/openapi.json"},
	{"GitHub webhooks (api.github.com)", "../github/testdata/openapi-webhooks.json"},
	{"GitLab REST v4", "../gitlab/testdata/openapi.json"},
	{"Bitbucket Cloud REST 2.0", "../bitbucket/testdata/openapi.json"},
	{"Azure DevOps Git 7.1 (6.0 and 7.0: the same operations)", "../azuredevops/testdata/openapi/git-7.1.json"},
	{"Azure DevOps Service Hooks 7.1 (6.0 and 7.0: the same operations)", "../azuredevops/testdata/openapi/hooks-7.1.json"},
}

const (
	begin = "<!-- BEGIN GENERATED: operations (go test ./internal/forge/providers -run TestProvidersDocOperations -args -update) -->\n"
	end   = "<!-- END GENERATED: operations -->"
)

// TestProvidersDocOperations keeps the list of the published operations
// the product uses, in docs/PROVIDERS.md, generated from the descriptions
// the tests validate against: it fails when the list is stale.
func TestProvidersDocOperations(t *testing.T) {
	var b strings.Builder
	b.WriteString(begin)
	for _, p := range published {
		d := apispec.Load(t, p.file)
		fmt.Fprintf(&b, "\n#### %s: %d operations\n\nFrom `%s` (%s), sha256 `%s…` of the published file.\n\n| operation | operationId | summary |\n| --- | --- | --- |\n",
			p.provider, len(d.Operations()), d.Source.File, d.Title(), d.Source.SHA256[:16])
		b.WriteString(d.OperationsMarkdown())
	}
	b.WriteString("\n" + end)
	want := b.String()

	path := filepath.Join("..", "..", "..", "docs", "PROVIDERS.md")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no generated operations section (markers %q … %q)", path, strings.TrimSpace(begin), end)
	}
	got := doc[i : j+len(end)]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(doc[:i]+want+doc[j+len(end):]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the operations list in %s is stale; regenerate: go test ./internal/forge/providers -run TestProvidersDocOperations -args -update", path)
}
