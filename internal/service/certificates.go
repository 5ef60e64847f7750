package service

import (
	"context"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/store"
)

// CertificateView is one name's HTTPS certificate as its owner sees it.
type CertificateView struct {
	store.CertificateState
	// ExpiresInDays is whole days until NotAfter (absent without one).
	ExpiresInDays *int `json:"expires_in_days,omitempty"`
	// Warning says what needs attention: a failed order or renewal, or a
	// certificate expiring within CertificateWarnDays.
	Warning string `json:"warning,omitempty"`
}

// CertificateWarnDays is how close to expiry a certificate is reported.
const CertificateWarnDays = 14

// Certificates lists the certificates of the names the actor's
// organisation holds; an installation administrator sees every name,
// the control plane's own included.
func (s *Service) Certificates(ctx context.Context, a Actor) ([]CertificateView, error) {
	if err := a.can(slipway.ResServices, slipway.ActRead); err != nil {
		return nil, err
	}
	admin, err := s.IsInstallationAdmin(ctx, a)
	if err != nil {
		return nil, err
	}
	var states []store.CertificateState
	if admin {
		states, err = s.store.ListCertificateStates(ctx)
	} else {
		states, err = s.store.ListOrgCertificateStates(ctx, a.OrgID)
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]CertificateView, 0, len(states))
	for _, st := range states {
		out = append(out, certificateView(st, now))
	}
	return out, nil
}

func certificateView(st store.CertificateState, now time.Time) CertificateView {
	v := CertificateView{CertificateState: st}
	if st.NotAfter != nil {
		days := int(st.NotAfter.Sub(now).Hours() / 24)
		v.ExpiresInDays = &days
		if days < CertificateWarnDays {
			v.Warning = "the certificate expires within 14 days and has not been renewed yet"
		}
	}
	if st.State == "failed" {
		v.Warning = st.LastError
	}
	return v
}

// certificatesByHost maps the organisation's hosts to their certificates.
func (s *Service) certificatesByHost(ctx context.Context, orgID string) (map[string]*CertificateView, error) {
	states, err := s.store.ListOrgCertificateStates(ctx, orgID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make(map[string]*CertificateView, len(states))
	for _, st := range states {
		v := certificateView(st, now)
		out[st.Host] = &v
	}
	return out, nil
}
