package service

import (
	"context"
	"crypto/rand"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/store"
)

// VariableInput sets one variable. A value of the form {{ secret(N) }}
// is replaced, once, by N random characters kept as a secret; a value
// containing {{ other-service.KEY }} is resolved at deploy time from the
// named Service of the same Environment.
type VariableInput struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Secret bool   `json:"secret"`
}

// VariableView is a variable as the API shows it: secret values masked.
type VariableView struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Secret bool   `json:"secret"`
}

var (
	keyPattern       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	generatedSecret  = regexp.MustCompile(`^\{\{\s*secret\((\d+)\)\s*\}\}$`)
	serviceReference = regexp.MustCompile(`\{\{\s*([a-z][a-z0-9-]*)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)
)

func variableAAD(serviceID, key string) []byte { return []byte("variable:" + serviceID + ":" + key) }

// SetVariable sets a Service variable; secret values are encrypted.
func (s *Service) SetVariable(ctx context.Context, a Actor, serviceRef string, in VariableInput) (VariableView, error) {
	if err := a.can(slipway.ResServices, slipway.ActUpdate); err != nil {
		return VariableView{}, err
	}
	if !keyPattern.MatchString(in.Key) || in.Key == "PORT" {
		return VariableView{}, slipway.Errorf(slipway.ECodeInvalid, "variable name %q must be letters, digits and underscores (and not PORT, which Slipway sets)", in.Key)
	}
	svc, err := s.resolveService(ctx, a.OrgID, serviceRef)
	if err != nil {
		return VariableView{}, err
	}
	value := in.Value
	if m := generatedSecret.FindStringSubmatch(value); m != nil {
		n, _ := strconv.Atoi(m[1])
		if n < 8 || n > 512 {
			return VariableView{}, slipway.Errorf(slipway.ECodeInvalid, "secret(%d): length must be between 8 and 512", n)
		}
		value, in.Secret = randomString(n), true
	}
	v := store.Variable{Key: in.Key, Secret: in.Secret, Value: []byte(value), UpdatedAt: s.now().UTC()}
	if in.Secret {
		if v.Value, err = s.keys.Seal([]byte(value), variableAAD(svc.ID, in.Key)); err != nil {
			return VariableView{}, err
		}
	}
	if err := s.store.SetVariable(ctx, a.OrgID, svc.ID, v); err != nil {
		return VariableView{}, err
	}
	return viewOf(v), nil
}

func viewOf(v store.Variable) VariableView {
	if v.Secret {
		return VariableView{Key: v.Key, Value: "********", Secret: true}
	}
	return VariableView{Key: v.Key, Value: string(v.Value)}
}

// ListVariables lists a Service's variables with secret values masked.
func (s *Service) ListVariables(ctx context.Context, a Actor, serviceRef string) ([]VariableView, error) {
	if err := a.can(slipway.ResServices, slipway.ActRead); err != nil {
		return nil, err
	}
	svc, err := s.resolveService(ctx, a.OrgID, serviceRef)
	if err != nil {
		return nil, err
	}
	vars, err := s.store.ListVariables(ctx, a.OrgID, svc.ID)
	if err != nil {
		return nil, err
	}
	out := make([]VariableView, 0, len(vars))
	for _, v := range vars {
		out = append(out, viewOf(v))
	}
	return out, nil
}

// DeleteVariable removes a variable.
func (s *Service) DeleteVariable(ctx context.Context, a Actor, serviceRef, key string) error {
	if err := a.can(slipway.ResServices, slipway.ActUpdate); err != nil {
		return err
	}
	svc, err := s.resolveService(ctx, a.OrgID, serviceRef)
	if err != nil {
		return err
	}
	return s.store.DeleteVariable(ctx, a.OrgID, svc.ID, key)
}

// Env is a Service's resolved environment for a build or a release.
// Secrets lists the secret values so logs can mask them.
type Env struct {
	Values  map[string]string
	Secrets []string
}

// ServiceEnv decrypts and resolves a Service's variables, including
// references to other Services of the same Environment.
func (s *Service) ServiceEnv(ctx context.Context, svc slipway.Service) (Env, error) {
	env := Env{Values: map[string]string{}}
	own, err := s.plainVariables(ctx, svc)
	if err != nil {
		return Env{}, err
	}
	var siblings map[string]slipway.Service
	for k, v := range own {
		env.Values[k] = v.value
		if v.secret {
			env.Secrets = append(env.Secrets, v.value)
		}
	}
	for k, val := range env.Values {
		var rerr error
		env.Values[k] = serviceReference.ReplaceAllStringFunc(val, func(m string) string {
			parts := serviceReference.FindStringSubmatch(m)
			if siblings == nil {
				var err error
				if siblings, err = s.referenceScope(ctx, svc); err != nil {
					rerr = err
					return m
				}
			}
			other, ok := siblings[parts[1]]
			if !ok {
				rerr = slipway.Errorf(slipway.ECodeInvalid, "variable %s refers to service %q, which is not in this environment", k, parts[1])
				return m
			}
			vars, err := s.plainVariables(ctx, other)
			if err != nil {
				rerr = err
				return m
			}
			ref, ok := vars[parts[2]]
			if !ok {
				rerr = slipway.Errorf(slipway.ECodeInvalid, "variable %s refers to %s.%s, which is not set", k, parts[1], parts[2])
				return m
			}
			if ref.secret {
				env.Secrets = append(env.Secrets, ref.value)
			}
			return ref.value
		})
		if rerr != nil {
			return Env{}, rerr
		}
	}
	return env, nil
}

// referenceScope returns, by name, the Services a reference of svc may
// name: those of its Environment, or for a legacy Service still in a
// Project, those of that Project. A Service in neither sees none, never
// the whole organisation (an empty filter field would match every row).
func (s *Service) referenceScope(ctx context.Context, svc slipway.Service) (map[string]slipway.Service, error) {
	var f store.ServiceFilter
	switch {
	case svc.EnvironmentID != "":
		f.EnvironmentID = svc.EnvironmentID
	case svc.ProjectID != "":
		f.ProjectID = svc.ProjectID
	default:
		return map[string]slipway.Service{}, nil
	}
	list, _, err := s.store.ListServices(ctx, svc.OrgID, f, store.Page{Limit: store.MaxPageLimit})
	if err != nil {
		return nil, err
	}
	out := make(map[string]slipway.Service, len(list))
	for _, o := range list {
		out[o.Name] = o
	}
	return out, nil
}

type plainVar struct {
	value  string
	secret bool
}

func (s *Service) plainVariables(ctx context.Context, svc slipway.Service) (map[string]plainVar, error) {
	vars, err := s.store.ListVariables(ctx, svc.OrgID, svc.ID)
	if err != nil {
		return nil, err
	}
	out := map[string]plainVar{}
	for _, v := range vars {
		if !v.Secret {
			out[v.Key] = plainVar{value: string(v.Value)}
			continue
		}
		raw, err := s.keys.Open(v.Value, variableAAD(svc.ID, v.Key))
		if err != nil {
			return nil, fmt.Errorf("decrypt variable %s: %w", v.Key, err)
		}
		out[v.Key] = plainVar{value: string(raw), secret: true}
	}
	return out, nil
}

const secretAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte(secretAlphabet[int(c)%len(secretAlphabet)])
	}
	return sb.String()
}
