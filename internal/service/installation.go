package service

import (
	"context"

	"slipway.dev/slipway"
)

// InstallationSetting is one setting of the whole installation, as the
// operator gave it to `slipway serve` (flag, environment variable or
// default). Organisation admins neither see nor change these.
type InstallationSetting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// InstallationView is the installation's settings and administrators.
type InstallationView struct {
	Settings []InstallationSetting `json:"settings"`
}

// requireInstallationAdmin refuses anyone but an installation
// administrator. Being Admin of an organisation is not enough: anyone may
// create an organisation and be its Admin.
func (s *Service) requireInstallationAdmin(ctx context.Context, a Actor) error {
	if a.UserID == "" {
		return slipway.Errorf(slipway.ECodeUnauthenticated, "authentication required")
	}
	ok, err := s.store.IsInstallationAdmin(ctx, a.UserID)
	if err != nil {
		return err
	}
	if !ok {
		return slipway.Errorf(slipway.ECodeForbidden, "installation settings are for installation administrators; an organisation's Admin role does not include them").
			WithFix("ask the operator to change the `slipway serve` flag or environment variable, or an installation administrator to grant you the role")
	}
	return nil
}

// IsInstallationAdmin reports whether the actor's user administers the
// installation.
func (s *Service) IsInstallationAdmin(ctx context.Context, a Actor) (bool, error) {
	if a.UserID == "" {
		return false, nil
	}
	return s.store.IsInstallationAdmin(ctx, a.UserID)
}

// Installation returns the installation's settings to an installation
// administrator.
func (s *Service) Installation(ctx context.Context, a Actor) (InstallationView, error) {
	if err := s.requireInstallationAdmin(ctx, a); err != nil {
		return InstallationView{}, err
	}
	return InstallationView{Settings: append([]InstallationSetting{}, s.cfg.Installation...)}, nil
}

// SetInstallationAdmin grants or takes away the installation administrator
// role; only an installation administrator may, and never from themselves
// (so the installation always keeps one).
func (s *Service) SetInstallationAdmin(ctx context.Context, a Actor, userID string, admin bool) error {
	if err := s.requireInstallationAdmin(ctx, a); err != nil {
		return err
	}
	if !admin && userID == a.UserID {
		return slipway.Errorf(slipway.ECodeConflict, "you cannot take the installation administrator role from yourself").
			WithFix("have another installation administrator do it")
	}
	if _, err := s.store.GetUser(ctx, userID); err != nil {
		return err
	}
	if err := s.store.SetInstallationAdmin(ctx, userID, admin); err != nil {
		return err
	}
	s.log.Info("installation administrator changed", "by", a.UserID, "user", userID, "admin", admin)
	return nil
}
