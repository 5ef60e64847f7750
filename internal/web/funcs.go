package web

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"slipway.dev/slipway"
)

// funcs are the helpers templates may call. They are pure functions of
// their arguments.
var funcs = template.FuncMap{
	"short":     slipway.ShortSHA,
	"firstLine": firstLine,
	"when":      when,
	"whenPtr": func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return when(*t)
	},
	"join": strings.Join,
	"org": func(orgID string, parts ...string) string {
		return orgURL(orgID, parts...)
	},
	"badge":    badgeClass,
	"label":    statusLabel,
	"phases":   phaseSummary,
	"provider": providerName,
	"lines":    func(v []string) string { return strings.Join(v, "\n") },
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// when formats a time for people: relative when recent, a date otherwise.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// badgeClass maps any status (integration, deployment, application,
// environment, hook) to a colour class.
func badgeClass(status any) string {
	switch fmt.Sprint(status) {
	case "connected", "live", "active", "deployed", "processed":
		return "badge ok"
	case "needs_attention", "failed", "failing", "rejected", "error":
		return "badge bad"
	case "queued", "cloning", "building", "deploying", "pending":
		return "badge busy"
	}
	return "badge"
}

// statusLabel is a status as the page says it.
func statusLabel(status any) string {
	switch s := fmt.Sprint(status); s {
	case "connected":
		return "Connected"
	case "needs_attention":
		return "Needs attention"
	case "disconnected":
		return "Disconnected"
	case "pending":
		return "Pending"
	default:
		return strings.ReplaceAll(s, "_", " ")
	}
}

// phaseSummary is a deployment's per-phase timings on one line.
func phaseSummary(d slipway.Deployment) string {
	var parts []string
	for _, p := range d.Phases {
		if p.Phase == slipway.DeployLive || p.FinishedAt == nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s", p.Phase, p.FinishedAt.Sub(p.StartedAt).Round(100*time.Millisecond)))
	}
	return strings.Join(parts, " · ")
}

func providerName(p slipway.Provider) string {
	for _, c := range providerCards() {
		if c.Provider == p {
			return c.Name
		}
	}
	return string(p)
}
