package httpapi

import (
	"reflect"
	"regexp"
	"strings"
	"time"
)

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

// OpenAPI returns the OpenAPI 3.1 document of the served routes, built from
// the same table as the mux.
func (api *API) OpenAPI() map[string]any {
	paths := map[string]any{}
	schemas := map[string]any{
		"Problem": schemaOf(reflect.TypeOf(Problem{}), nil),
	}
	for _, rt := range api.routes {
		item, _ := paths[rt.pattern].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.pattern] = item
		}
		op := map[string]any{
			"summary":     rt.summary,
			"operationId": operationID(rt.method, rt.pattern),
			"tags":        []string{rt.tag},
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.pattern, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.request != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": ref(rt.request, schemas)}}}
		}
		ok := map[string]any{"description": "success"}
		if rt.response != nil {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": ref(rt.response, schemas)}}
		}
		status := "200"
		switch {
		case rt.method == "DELETE" && rt.response == nil, rt.method == "PATCH" && rt.response == nil:
			status = "204"
		case strings.HasSuffix(op["summary"].(string), "shown once)") || rt.method == "POST" && (strings.HasPrefix(rt.summary, "Create") || strings.HasPrefix(rt.summary, "Connect") || strings.HasPrefix(rt.summary, "Add") || strings.HasPrefix(rt.summary, "Start")):
			status = "201"
		case rt.method == "POST" && rt.tag == "deployments" && !strings.Contains(rt.pattern, "/cancel"):
			status = "202"
		}
		problem := map[string]any{"description": "error", "content": map[string]any{
			"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}}
		op["responses"] = map[string]any{status: ok, "default": problem}
		if !rt.public {
			op["security"] = []any{map[string]any{"bearer": []string{}}}
		}
		item[strings.ToLower(rt.method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": "Slipway API", "version": "1"},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
	}
}

func operationID(method, pattern string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, seg := range strings.Split(strings.TrimPrefix(pattern, "/api/v1/"), "/") {
		seg = strings.Trim(seg, "{}")
		for _, part := range strings.Split(seg, "-") {
			if part != "" {
				b.WriteString(strings.ToUpper(part[:1]) + part[1:])
			}
		}
	}
	return b.String()
}

// ref registers the schema of v's type and returns a $ref to it.
func ref(v any, schemas map[string]any) map[string]any {
	t := reflect.TypeOf(v)
	name := schemaName(t)
	if _, ok := schemas[name]; !ok {
		schemas[name] = map[string]any{} // break recursion
		schemas[name] = schemaOf(t, schemas)
	}
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

func schemaName(t reflect.Type) string {
	n := t.Name()
	n = strings.NewReplacer("[", "Of", "]", "", "*", "", ".", "", "/", "", " ", "").Replace(n)
	if i := strings.LastIndex(n, "Of"); i > 0 && strings.Contains(n, "slipwaydev") {
		parts := strings.Split(n, "slipwaydev")
		last := parts[len(parts)-1]
		for _, p := range []string{"slipway", "internalforge", "internalstore", "internalservice", "internalhttpapi"} {
			last = strings.TrimPrefix(last, p)
		}
		n = n[:i] + "Of" + last
	}
	return n
}

var timeType = reflect.TypeOf(time.Time{})

// schemaOf is a small JSON Schema generator for the API's Go types.
func schemaOf(t reflect.Type, schemas map[string]any) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), schemas)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), schemas)}
	case reflect.Struct:
		props := map[string]any{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = schemaOf(f.Type, schemas)
		}
		return map[string]any{"type": "object", "properties": props}
	}
	return map[string]any{}
}
