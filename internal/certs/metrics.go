package certs

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exposes the certificate states on /metrics, read from the
// database at each scrape so every replica reports the same.
type collector struct {
	m       *Manager
	byState *prometheus.Desc
	expiry  *prometheus.Desc
}

// Collector returns the Prometheus collector of certificate metrics:
// slipway_tls_certificates{state} and
// slipway_tls_certificate_expiry_days{host}.
func (m *Manager) Collector() prometheus.Collector {
	return &collector{m: m,
		byState: prometheus.NewDesc("slipway_tls_certificates", "Certificates by state (issuing, issued, renewing, failed).", []string{"state"}, nil),
		expiry:  prometheus.NewDesc("slipway_tls_certificate_expiry_days", "Days until a host's certificate expires.", []string{"host"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.byState
	ch <- c.expiry
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	states, err := c.m.States(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.byState, err)
		return
	}
	counts := map[string]int{StateIssuing: 0, StateIssued: 0, StateRenewing: 0, StateFailed: 0}
	now := c.m.opts.Now()
	for _, s := range states {
		counts[s.State]++
		if s.NotAfter != nil {
			ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, s.NotAfter.Sub(now).Hours()/24, s.Host)
		}
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.byState, prometheus.GaugeValue, float64(n), state)
	}
}
