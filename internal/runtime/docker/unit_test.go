package docker

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"slipway.dev/slipway/internal/runtime"
)

func TestDockerignoreExcludes(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, ".dockerignore", "# local state\n.git\n*.log\n**/node_modules\nsecrets/\n!secrets/public.pem\n/build\n")
	p, err := readDockerignore(dir)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]bool{
		".git":                      true,
		".git/config":               true,
		"app.log":                   true,
		"logs/app.log":              false, // * stays inside one segment
		"node_modules/x/index.js":   true,
		"web/node_modules/x/a.js":   true,
		"secrets/key.pem":           true,
		"secrets/public.pem":        false,
		"build/out":                 true,
		"src/build/out":             false,
		"main.go":                   false,
		"Dockerfile":                false,
		"gitignore-lookalike/.gitx": false,
	}
	for path, want := range cases {
		if got := p.excludes(path); got != want {
			t.Errorf("excludes(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestContextTarLeavesIgnoredFilesOut(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, ".dockerignore", ".env\ntmp\nDockerfile\n")
	write(t, dir, "Dockerfile", "FROM scratch\n")
	write(t, dir, ".env", "TOKEN=x\n")
	write(t, dir, "tmp/cache", "x")
	write(t, dir, "src/main.go", "package main\n")
	p, err := readDockerignore(dir)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeContextTar(&buf, dir, p, "Dockerfile"); err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	slices.Sort(names)
	want := []string{".dockerignore", "Dockerfile", "src/", "src/main.go"}
	if !slices.Equal(names, want) {
		t.Fatalf("context holds %q, want %q", names, want)
	}
}

func TestBuildStreamReportsFailingStep(t *testing.T) {
	stream := `{"stream":"Step 1/3 : FROM slipway/busybox:test\n"}
{"stream":" ---\u003e a0f3f12b6c2d\n"}
{"stream":"Step 2/3 : RUN make\n"}
{"stream":"make: not found\n"}
{"errorDetail":{"code":127,"message":"The command '/bin/sh -c make' returned a non-zero code: 127"},"error":"The command '/bin/sh -c make' returned a non-zero code: 127"}
`
	var logs bytes.Buffer
	_, err := readBuildStream(strings.NewReader(stream), &logs)
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want a *BuildError", err)
	}
	if be.Step != "Step 2/3 : RUN make" || !strings.Contains(be.Message, "non-zero code: 127") {
		t.Fatalf("BuildError = %+v", be)
	}
	if !strings.Contains(logs.String(), "make: not found\n") || !strings.Contains(logs.String(), "ERROR: ") {
		t.Fatalf("logs = %q", logs.String())
	}
}

func TestBuildStreamReturnsImageID(t *testing.T) {
	stream := `{"status":"Pulling fs layer","id":"abc","progressDetail":{}}
{"status":"Downloading","id":"abc","progress":"[==>   ]"}
{"stream":"Step 1/1 : FROM slipway/busybox:test\n"}
{"aux":{"ID":"sha256:0123456789abcdef"}}
{"stream":"Successfully built 0123456789ab\n"}
`
	var logs bytes.Buffer
	id, err := readBuildStream(strings.NewReader(stream), &logs)
	if err != nil {
		t.Fatal(err)
	}
	if id != "sha256:0123456789abcdef" {
		t.Fatalf("id = %q", id)
	}
	if strings.Contains(logs.String(), "[==>") {
		t.Fatalf("progress bars reached the log: %q", logs.String())
	}
	if !strings.Contains(logs.String(), "abc: Pulling fs layer\n") {
		t.Fatalf("status line missing: %q", logs.String())
	}
}

func TestEnvironSetsPortLast(t *testing.T) {
	got := Environ(map[string]string{"B": "2", "A": "1", "PORT": "80"}, 4321)
	want := []string{"A=1", "B=2", "PORT=4321"}
	if !slices.Equal(got, want) {
		t.Fatalf("Environ = %q, want %q", got, want)
	}
}

func TestContainerNameIsDockerSafe(t *testing.T) {
	got := ContainerName(runtime.Release{Name: "web production/shop", DeploymentID: "dep_abc"})
	if got != "slipway-web-production-shop-dep_abc" {
		t.Fatalf("ContainerName = %q", got)
	}
}

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsDefaults(t *testing.T) {
	got := Options{}.withDefaults()
	if got.Logger == nil || got.MemoryBytes != 512<<20 || got.PidsLimit != 512 || got.CPUShares != 512 ||
		got.MaxRestarts != 5 || got.StopGrace != 10*time.Second || got.HealthTimeout != 60*time.Second {
		t.Errorf("defaults: %+v", got)
	}
	set := Options{MemoryBytes: 64 << 20, PidsLimit: 32, StopGrace: time.Second}.withDefaults()
	if set.MemoryBytes != 64<<20 || set.PidsLimit != 32 || set.StopGrace != time.Second {
		t.Errorf("set fields were replaced: %+v", set)
	}
}
