package service

import (
	"context"
	"sync"
	"time"

	"slipway.dev/slipway"
)

// Refusal is one webhook request turned away before anything was stored:
// when, from where, for which hook, and why. The body is never kept.
type Refusal struct {
	At     time.Time `json:"at"`
	Source string    `json:"source,omitempty"`
	Hook   string    `json:"hook,omitempty"`
	Reason string    `json:"reason"`
}

// refusalsKept is how many recent refusals each integration keeps.
const refusalsKept = 32

// refusalLog keeps the most recent refusals per integration in memory, in
// a fixed ring each: a flood of forged requests costs no storage and no
// write. It is per replica and does not survive a restart; the durable
// trace is the integration's bad-signature counter.
type refusalLog struct {
	mu    sync.Mutex
	rings map[string]*refusalRing
}

type refusalRing struct {
	entries [refusalsKept]Refusal
	next    int
	total   int64
	perHook map[string]int64
}

func newRefusalLog() *refusalLog { return &refusalLog{rings: map[string]*refusalRing{}} }

func (l *refusalLog) record(integrationID string, r Refusal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ring := l.rings[integrationID]
	if ring == nil {
		ring = &refusalRing{perHook: map[string]int64{}}
		l.rings[integrationID] = ring
	}
	ring.entries[ring.next%refusalsKept] = r
	ring.next++
	ring.total++
	if len(ring.perHook) < 1024 || ring.perHook[r.Hook] > 0 { // hook ids in URLs are the sender's choice: bound the map
		ring.perHook[r.Hook]++
	}
}

// RefusalReport is the troubleshooting view of an integration's refused
// webhook requests on this replica.
type RefusalReport struct {
	Total   int64            `json:"total"`
	PerHook map[string]int64 `json:"per_hook"`
	Recent  []Refusal        `json:"recent"` // newest first
}

func (l *refusalLog) report(integrationID string) RefusalReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	rep := RefusalReport{PerHook: map[string]int64{}, Recent: []Refusal{}}
	ring := l.rings[integrationID]
	if ring == nil {
		return rep
	}
	rep.Total = ring.total
	for k, v := range ring.perHook {
		rep.PerHook[k] = v
	}
	for i := 1; i <= refusalsKept && i <= ring.next; i++ {
		rep.Recent = append(rep.Recent, ring.entries[(ring.next-i)%refusalsKept])
	}
	return rep
}

// WebhookRefusals returns the recent refused webhook requests of one of
// the actor's integrations, for delivery troubleshooting.
func (s *Service) WebhookRefusals(ctx context.Context, a Actor, integrationID string) (RefusalReport, error) {
	if err := a.can(slipway.ResIntegrations, slipway.ActRead); err != nil {
		return RefusalReport{}, err
	}
	if _, err := s.store.GetIntegration(ctx, a.OrgID, integrationID); err != nil {
		return RefusalReport{}, err
	}
	return s.refusals.report(integrationID), nil
}
