package apispec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v4"
)

// Op names one operation of a document: an HTTP method and the path
// template exactly as the document writes it. Method "WEBHOOK" names an
// entry of an OpenAPI 3.1 document's webhooks (GitHub's "push").
type Op struct {
	Method string `json:"method"`
	Path   string `json:"path"`
}

func (o Op) String() string { return strings.ToUpper(o.Method) + " " + o.Path }

// Source says where a trimmed document came from.
type Source struct {
	File    string `json:"file"`    // the provider's published file
	From    string `json:"from"`    // where that file was obtained
	License string `json:"license"` // the licence the file states
	SHA256  string `json:"sha256"`  // of the full file, as published
}

// sourceKey carries the attribution inside the trimmed document.
const sourceKey = "x-slipway-source"

// Trim keeps, of a full published document (OpenAPI 3 or Swagger 2, with
// or without a UTF-8 BOM), only the operations ops and every definition
// they reference, transitively. Examples are dropped (Azure's are files
// beside the document, GitHub's are most of its size); nothing else is
// changed, so what remains validates exactly as the full document does.
func Trim(full []byte, src Source, ops []Op) ([]byte, error) {
	sum := sha256.Sum256(full)
	src.SHA256 = hex.EncodeToString(sum[:])
	doc, err := decode(bytes.TrimPrefix(full, bom))
	if err != nil {
		return nil, fmt.Errorf("apispec: decode %s: %w", src.File, err)
	}
	paths, _ := doc["paths"].(map[string]any)
	hooks, _ := doc["webhooks"].(map[string]any)
	kept, keptHooks := map[string]any{}, map[string]any{}
	for _, op := range ops {
		item, ok := paths[op.Path].(map[string]any)
		m := strings.ToLower(op.Method)
		if m == "webhook" {
			if h, ok := hooks[op.Path].(map[string]any); ok {
				stripExamples(h)
				keptHooks[op.Path] = h
				continue
			}
			return nil, fmt.Errorf("apispec: %s has no webhook %s", src.File, op.Path)
		}
		if !ok {
			return nil, fmt.Errorf("apispec: %s has no path %s", src.File, op.Path)
		}
		if _, ok := item[m]; !ok {
			return nil, fmt.Errorf("apispec: %s has no operation %s", src.File, op)
		}
		out, _ := kept[op.Path].(map[string]any)
		if out == nil {
			out = map[string]any{}
			if p, ok := item["parameters"]; ok {
				out["parameters"] = p
			}
			kept[op.Path] = out
		}
		out[m] = item[m]
	}
	stripExamples(kept)
	trimmed := map[string]any{sourceKey: src, "paths": kept}
	if len(keptHooks) > 0 {
		trimmed["webhooks"] = keptHooks
	}
	for k, v := range doc {
		switch k {
		case "paths", "components", "definitions", "parameters", "responses", "x-ms-paths", "x-webhooks", "webhooks", "tags":
		default:
			trimmed[k] = v
		}
	}
	// Copy every referenced definition, following references inside the
	// copies until nothing new is named.
	pending := append(refs(kept), refs(keptHooks)...)
	if sec, ok := doc["security"]; ok {
		trimmed["security"] = sec
	}
	for _, container := range []string{"securitySchemes", "securityDefinitions"} {
		if c, ok := lookup(doc, "components/"+container); ok {
			setPath(trimmed, "components/"+container, c)
		} else if c, ok := doc[container]; ok {
			trimmed[container] = c
		}
	}
	seen := map[string]bool{}
	for len(pending) > 0 {
		ref := pending[0]
		pending = pending[1:]
		if seen[ref] {
			continue
		}
		seen[ref] = true
		ptr, ok := strings.CutPrefix(ref, "#/")
		if !ok {
			return nil, fmt.Errorf("apispec: %s references %q outside the document", src.File, ref)
		}
		v, ok := lookup(doc, ptr)
		if !ok {
			return nil, fmt.Errorf("apispec: %s: dangling reference %q", src.File, ref)
		}
		stripExamples(v)
		setPath(trimmed, ptr, v)
		pending = append(pending, refs(v)...)
	}
	return json.MarshalIndent(trimmed, "", " ")
}

var bom = []byte{0xEF, 0xBB, 0xBF}

// decode reads a JSON document, or a YAML one (GitLab publishes YAML) as
// the JSON it stands for.
func decode(raw []byte) (map[string]any, error) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		var y any
		if err := yaml.Unmarshal(raw, &y); err != nil {
			return nil, err
		}
		// Round-trip through JSON so every map is a map[string]any.
		j, err := json.Marshal(y)
		if err != nil {
			return nil, err
		}
		raw = j
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	return doc, nil
}

func stripExamples(v any) {
	switch t := v.(type) {
	case map[string]any:
		delete(t, "x-ms-examples")
		delete(t, "examples")
		delete(t, "example")
		for k, c := range t {
			if props, ok := c.(map[string]any); ok && k == "properties" {
				// Property names are data: a property called "example"
				// stays; only its schema is walked.
				for _, prop := range props {
					stripExamples(prop)
				}
				continue
			}
			stripExamples(c)
		}
	case []any:
		for _, c := range t {
			stripExamples(c)
		}
	}
}

// refs lists every "$ref" value under v, sorted for a stable walk.
func refs(v any) []string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			if r, ok := t["$ref"].(string); ok {
				out = append(out, r)
			}
			for _, c := range t {
				walk(c)
			}
		case []any:
			for _, c := range t {
				walk(c)
			}
		}
	}
	walk(v)
	sort.Strings(out)
	return out
}

// pointerParts splits a JSON pointer into its unescaped segments.
func pointerParts(ptr string) []string {
	parts := strings.Split(ptr, "/")
	for i, p := range parts {
		parts[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(p)
	}
	return parts
}

func lookup(doc map[string]any, ptr string) (any, bool) {
	var cur any = doc
	for _, p := range pointerParts(ptr) {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func setPath(doc map[string]any, ptr string, v any) {
	parts := pointerParts(ptr)
	cur := doc
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = v
}
