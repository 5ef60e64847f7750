package httpapi

// extraRoutes collects the route groups kept in their own files
// (legacy projects, GitHub App flows), appended to the main table.
func (api *API) extraRoutes() []route {
	var out []route
	for _, group := range []func() []route{api.projectRoutes, api.githubRoutes} {
		out = append(out, group()...)
	}
	return out
}
