package slipway

import "time"

// Resource is a kind of thing a role grants access to.
type Resource string

// Resources covered by roles.
const (
	ResApplications Resource = "applications"
	ResEnvironments Resource = "environments"
	ResServices     Resource = "services"
	ResDeployments  Resource = "deployments"
	ResIntegrations Resource = "integrations"
	ResMembers      Resource = "members"
	ResRoles        Resource = "roles"
	ResProjects     Resource = "projects"
)

// Resources lists every resource type.
var Resources = []Resource{ResApplications, ResEnvironments, ResServices, ResDeployments, ResIntegrations, ResMembers, ResRoles, ResProjects}

// Action is what a permission allows on a resource.
type Action string

// CRUD actions.
const (
	ActCreate Action = "create"
	ActRead   Action = "read"
	ActUpdate Action = "update"
	ActDelete Action = "delete"
)

// Actions lists every action.
var Actions = []Action{ActCreate, ActRead, ActUpdate, ActDelete}

// Permissions maps a resource to the actions allowed on it.
type Permissions map[Resource][]Action

// Allows reports whether p grants act on res.
func (p Permissions) Allows(res Resource, act Action) bool {
	for _, a := range p[res] {
		if a == act {
			return true
		}
	}
	return false
}

// Validate checks every resource and action name.
func (p Permissions) Validate() error {
	for res, acts := range p {
		if !containsResource(res) {
			return Errorf(ECodeInvalid, "unknown resource %q in permissions", res)
		}
		for _, a := range acts {
			if a != ActCreate && a != ActRead && a != ActUpdate && a != ActDelete {
				return Errorf(ECodeInvalid, "unknown action %q for %s", a, res)
			}
		}
	}
	return nil
}

func containsResource(r Resource) bool {
	for _, x := range Resources {
		if x == r {
			return true
		}
	}
	return false
}

// Built-in role names.
const (
	RoleAdmin     = "Admin"
	RoleDeveloper = "Developer"
)

// Role is a named set of permissions in one organisation. The built-in Admin
// role allows everything and cannot be edited.
type Role struct {
	ID          string      `json:"id"`
	OrgID       string      `json:"org_id"`
	Name        string      `json:"name"`
	BuiltIn     bool        `json:"built_in"`
	Permissions Permissions `json:"permissions"`
	CreatedAt   time.Time   `json:"created_at"`
}

// AdminPermissions grants every action on every resource.
func AdminPermissions() Permissions {
	p := Permissions{}
	for _, r := range Resources {
		p[r] = append([]Action(nil), Actions...)
	}
	return p
}

// DeveloperPermissions is the seeded Developer role: full control of
// applications, environments, services and deployments; read-only on
// integrations, members, roles and projects.
func DeveloperPermissions() Permissions {
	p := Permissions{}
	for _, r := range []Resource{ResApplications, ResEnvironments, ResServices, ResDeployments} {
		p[r] = append([]Action(nil), Actions...)
	}
	for _, r := range []Resource{ResIntegrations, ResMembers, ResRoles, ResProjects} {
		p[r] = []Action{ActRead}
	}
	return p
}
