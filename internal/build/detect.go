package build

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"slipway.dev/slipway"
)

// Plan is what a build runs and how the result starts.
type Plan struct {
	Kind    string
	Install string
	Build   string
	Start   string
}

// Detect chooses the commands for the checkout in dir: the Service's
// settings where set, detected defaults otherwise. selfPath is the slipway
// binary that serves static sites.
func Detect(dir string, settings slipway.BuildSettings, selfPath string) (Plan, error) {
	var p Plan
	has := func(name string) bool { _, err := os.Stat(filepath.Join(dir, name)); return err == nil }
	switch {
	case has("go.mod"):
		p = Plan{Kind: "go", Build: "go build -o ./app .", Start: "exec ./app"}
	case has("package.json"):
		p = Plan{Kind: "node", Install: "npm install", Start: "exec npm start"}
		if has("package-lock.json") {
			p.Install = "npm ci"
		}
		if packageHasScript(filepath.Join(dir, "package.json"), "build") {
			p.Build = "npm run build"
		}
	case has("requirements.txt"):
		p = Plan{Kind: "python", Install: "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt"}
		for _, f := range []string{"app.py", "main.py"} {
			if has(f) {
				p.Start = "exec .venv/bin/python3 " + f
				break
			}
		}
	case has("index.html"):
		p = Plan{Kind: "static", Start: "exec " + shellQuote(StaticServeCommand(selfPath, ".")...)}
	default:
		p = Plan{Kind: "custom"}
	}
	if web := procfileWeb(filepath.Join(dir, "Procfile")); web != "" {
		if p.Kind == "custom" {
			p.Kind = "procfile"
		}
		p.Start = web
	}
	if settings.InstallCommand != "" {
		p.Install = settings.InstallCommand
	}
	if settings.BuildCommand != "" {
		p.Build = settings.BuildCommand
	}
	if settings.StartCommand != "" {
		p.Start = settings.StartCommand
	}
	if p.Start == "" {
		return Plan{}, &slipway.Error{
			Code:    slipway.ECodeInvalid,
			Message: "no start command: nothing in the repository says how to run it",
			Fix:     "set a start command on the Service, or add a Procfile with a web: line",
		}
	}
	return p, nil
}

// StaticServeCommand is the argv that serves dir as a static site on
// $PORT: the slipway binary's "static-serve" command, which the CLI wires
// to ServeStatic.
func StaticServeCommand(selfPath, dir string) []string {
	return []string{selfPath, "static-serve", "--dir", dir}
}

func procfileWeb(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if cmd, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "web:"); ok {
			return strings.TrimSpace(cmd)
		}
	}
	return ""
}

func packageHasScript(path, script string) bool {
	raw, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	if json.Unmarshal(raw, &pkg) != nil {
		return false
	}
	_, ok := pkg.Scripts[script]
	return ok
}

func shellQuote(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
