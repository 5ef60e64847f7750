package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/store"
)

// BootstrapResult is what first start created.
type BootstrapResult struct {
	Created  bool
	OrgID    string
	UserID   string
	Email    string
	Password string // the administrator's initial dashboard password, shown once
	Token    string // the administrator's API token, shown once
}

// Bootstrap creates organisation "default", an administrator and an admin
// API token when the database has no organisation yet. It does nothing on
// later starts.
func (s *Service) Bootstrap(ctx context.Context, adminEmail string) (BootstrapResult, error) {
	n, err := s.store.CountOrganisations(ctx)
	if err != nil {
		return BootstrapResult{}, fmt.Errorf("count organisations: %w", err)
	}
	if n > 0 {
		return BootstrapResult{}, nil
	}
	password, _ := newSecretToken("")
	password = password[:20]
	res := BootstrapResult{Created: true, Email: adminEmail, Password: password}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		now := s.now().UTC()
		u := &slipway.User{ID: slipway.NewID(slipway.PrefixUser), Email: adminEmail, Name: "Administrator", CreatedAt: now}
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
		if err != nil {
			return err
		}
		if err := tx.CreateUser(ctx, u, string(hash)); err != nil {
			return fmt.Errorf("create administrator: %w", err)
		}
		orgID, err := s.createOrgTx(ctx, tx, "default", u.ID)
		if err != nil {
			return err
		}
		tok, _, err := s.createTokenTx(ctx, tx, orgID, u.ID, "admin (first start)", nil)
		if err != nil {
			return err
		}
		// The first administrator also administers the installation.
		if err := tx.SetInstallationAdmin(ctx, u.ID, true); err != nil {
			return err
		}
		res.OrgID, res.UserID, res.Token = orgID, u.ID, tok
		return nil
	})
	if err != nil {
		return BootstrapResult{}, fmt.Errorf("bootstrap: %w", err)
	}
	return res, nil
}

// createOrgTx creates an organisation with its built-in roles and makes
// ownerID its Admin.
func (s *Service) createOrgTx(ctx context.Context, tx *store.Tx, name, ownerID string) (string, error) {
	now := s.now().UTC()
	org := &slipway.Organisation{ID: slipway.NewID(slipway.PrefixOrganisation), Name: name, CreatedAt: now}
	if err := tx.CreateOrganisation(ctx, org); err != nil {
		return "", fmt.Errorf("create organisation: %w", err)
	}
	admin := &slipway.Role{ID: slipway.NewID(slipway.PrefixRole), OrgID: org.ID, Name: slipway.RoleAdmin, BuiltIn: true, Permissions: slipway.AdminPermissions(), CreatedAt: now}
	dev := &slipway.Role{ID: slipway.NewID(slipway.PrefixRole), OrgID: org.ID, Name: slipway.RoleDeveloper, Permissions: slipway.DeveloperPermissions(), CreatedAt: now}
	for _, r := range []*slipway.Role{admin, dev} {
		if err := tx.CreateRole(ctx, r); err != nil {
			return "", fmt.Errorf("create role %s: %w", r.Name, err)
		}
	}
	if err := tx.AddMember(ctx, &slipway.Membership{OrgID: org.ID, UserID: ownerID, RoleID: admin.ID, CreatedAt: now}); err != nil {
		return "", fmt.Errorf("add owner: %w", err)
	}
	return org.ID, nil
}

// CreateOrganisation creates a new organisation owned by the actor's user.
// Any authenticated user may create one; they become its Admin.
func (s *Service) CreateOrganisation(ctx context.Context, a Actor, name string) (slipway.Organisation, error) {
	if a.UserID == "" {
		return slipway.Organisation{}, slipway.Errorf(slipway.ECodeUnauthenticated, "authentication required")
	}
	if err := requireName("organisation", name); err != nil {
		return slipway.Organisation{}, err
	}
	var id string
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		id, err = s.createOrgTx(ctx, tx, name, a.UserID)
		return err
	})
	if err != nil {
		return slipway.Organisation{}, err
	}
	return s.store.GetOrganisation(ctx, id)
}

// ListOrganisations lists the organisations the actor's user belongs to.
func (s *Service) ListOrganisations(ctx context.Context, a Actor) ([]slipway.Organisation, error) {
	return s.store.ListOrganisationsForUser(ctx, a.UserID)
}

// GetOrganisation returns the actor's organisation when id is it.
func (s *Service) GetOrganisation(ctx context.Context, a Actor, id string) (slipway.Organisation, error) {
	if _, err := s.store.GetMembership(ctx, id, a.UserID); err != nil {
		return slipway.Organisation{}, slipway.NotFound("organisation", id)
	}
	return s.store.GetOrganisation(ctx, id)
}

// CreateTokenResult is a new API token; Secret is shown once.
type CreateTokenResult struct {
	Token  slipway.APIToken `json:"token"`
	Secret string           `json:"secret"`
}

// CreateToken creates an API token for the actor's own user in the actor's
// organisation.
func (s *Service) CreateToken(ctx context.Context, a Actor, name string, ttl time.Duration) (CreateTokenResult, error) {
	return s.createToken(ctx, a, name, ttl)
}

// CreateTokenForOrg creates an API token for the actor's own user in
// another organisation the user belongs to, so one sign-in reaches every
// organisation of the user. A user who is not a member gets NotFound,
// exactly as for an organisation that does not exist.
func (s *Service) CreateTokenForOrg(ctx context.Context, a Actor, orgRef, name string, ttl time.Duration) (CreateTokenResult, error) {
	if a.UserID == "" {
		return CreateTokenResult{}, slipway.Errorf(slipway.ECodeUnauthenticated, "authentication required")
	}
	org, err := s.memberOrg(ctx, a.UserID, orgRef)
	if err != nil {
		return CreateTokenResult{}, err
	}
	target, err := s.actorFor(ctx, org.ID, a.UserID)
	if err != nil {
		return CreateTokenResult{}, slipway.NotFound("organisation", orgRef)
	}
	return s.createToken(ctx, target, name, ttl)
}

// memberOrg finds one of userID's organisations by id or by name.
func (s *Service) memberOrg(ctx context.Context, userID, ref string) (slipway.Organisation, error) {
	orgs, err := s.store.ListOrganisationsForUser(ctx, userID)
	if err != nil {
		return slipway.Organisation{}, err
	}
	var byName []slipway.Organisation
	for _, o := range orgs {
		if o.ID == ref {
			return o, nil
		}
		if o.Name == ref {
			byName = append(byName, o)
		}
	}
	switch len(byName) {
	case 0:
		return slipway.Organisation{}, slipway.NotFound("organisation", ref)
	case 1:
		return byName[0], nil
	}
	return slipway.Organisation{}, slipway.Errorf(slipway.ECodeConflict, "you belong to %d organisations named %q", len(byName), ref).
		WithFix("name the organisation by its id (slipway org list)")
}

func (s *Service) createToken(ctx context.Context, a Actor, name string, ttl time.Duration) (CreateTokenResult, error) {
	if strings.TrimSpace(name) == "" {
		return CreateTokenResult{}, slipway.Errorf(slipway.ECodeInvalid, "token name is required")
	}
	if ttl < 0 {
		return CreateTokenResult{}, slipway.Errorf(slipway.ECodeInvalid, "a token's lifetime cannot be negative")
	}
	var res CreateTokenResult
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		var expires *time.Time
		if ttl > 0 {
			exp := s.now().Add(ttl).UTC()
			expires = &exp
		}
		secret, tok, err := s.createTokenTx(ctx, tx, a.OrgID, a.UserID, name, expires)
		if err != nil {
			return err
		}
		res = CreateTokenResult{Token: tok, Secret: secret}
		s.audit(ctx, tx, a, "token.create", "token", tok.ID, nil)
		return nil
	})
	return res, err
}

func (s *Service) createTokenTx(ctx context.Context, tx *store.Tx, orgID, userID, name string, expires *time.Time) (string, slipway.APIToken, error) {
	secret, hash := newSecretToken(tokenPrefix)
	tok := slipway.APIToken{ID: slipway.NewID(slipway.PrefixToken), OrgID: orgID, UserID: userID, Name: name, CreatedAt: s.now().UTC(), ExpiresAt: expires}
	if err := tx.CreateAPIToken(ctx, &tok, hash); err != nil {
		return "", slipway.APIToken{}, fmt.Errorf("create token: %w", err)
	}
	return secret, tok, nil
}

// ListTokens lists the actor's own tokens in the organisation.
func (s *Service) ListTokens(ctx context.Context, a Actor) ([]slipway.APIToken, error) {
	return s.store.ListAPITokens(ctx, a.OrgID, a.UserID)
}

// DeleteToken revokes a token: one of the actor's own, or any token of the
// organisation when the actor's role may remove members (revoking a token
// is part of removing access). Another member's token is otherwise
// refused, and a token of another organisation is not found.
func (s *Service) DeleteToken(ctx context.Context, a Actor, id string) error {
	if a.OrgID == "" {
		return slipway.Errorf(slipway.ECodeUnauthenticated, "authentication required")
	}
	return s.store.InTx(ctx, func(tx *store.Tx) error {
		tok, err := tx.GetAPIToken(ctx, a.OrgID, id)
		if err != nil {
			return err
		}
		if tok.UserID != a.UserID {
			if err := a.can(slipway.ResMembers, slipway.ActDelete); err != nil {
				return slipway.Errorf(slipway.ECodeForbidden, "token %q belongs to another member; your role %q may revoke only your own tokens", id, a.RoleName)
			}
		}
		if err := tx.DeleteAPIToken(ctx, a.OrgID, id); err != nil {
			return err
		}
		s.audit(ctx, tx, a, "token.revoke", "token", id, map[string]string{"owner": tok.UserID})
		return nil
	})
}

// CreateUserInput creates a user and adds them to the actor's organisation.
type CreateUserInput struct {
	Email    string `json:"email"`
	Name     string `json:"name"`
	Password string `json:"password"`
	Role     string `json:"role"` // role name or id; default Developer
}

// AddMemberResult is what adding a member did: a new user joins at once
// (Membership); an existing user is invited (Invitation) and joins only
// when they accept.
type AddMemberResult struct {
	Membership *slipway.Membership `json:"membership,omitempty"`
	Invitation *slipway.Invitation `json:"invitation,omitempty"`
}

// AddMember creates a user and adds them to the organisation with a role,
// or, when a user with that e-mail already exists, invites them: an
// existing account belongs to its owner, who may not want to join, so
// nothing is attached without their consent.
func (s *Service) AddMember(ctx context.Context, a Actor, in CreateUserInput) (AddMemberResult, error) {
	if err := a.can(slipway.ResMembers, slipway.ActCreate); err != nil {
		return AddMemberResult{}, err
	}
	in.Email = strings.TrimSpace(strings.ToLower(in.Email))
	if !strings.Contains(in.Email, "@") {
		return AddMemberResult{}, slipway.Errorf(slipway.ECodeInvalid, "a valid e-mail address is required")
	}
	if in.Role == "" {
		in.Role = slipway.RoleDeveloper
	}
	role, err := s.findRole(ctx, a.OrgID, in.Role)
	if err != nil {
		return AddMemberResult{}, err
	}
	var res AddMemberResult
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		u, _, err := tx.GetUserByEmail(ctx, in.Email)
		if err == nil {
			inv := slipway.Invitation{OrgID: a.OrgID, UserID: u.ID, RoleID: role.ID, RoleName: role.Name, InvitedBy: a.UserID, CreatedAt: s.now().UTC()}
			if err := tx.CreateInvitation(ctx, &inv); err != nil {
				return err
			}
			res.Invitation = &inv
			s.audit(ctx, tx, a, "member.invite", "user", u.ID, map[string]string{"role": role.Name})
			return nil
		}
		if slipway.ErrorCodeOf(err) != slipway.ECodeNotFound {
			return err
		}
		if len(in.Password) < 10 {
			return slipway.Errorf(slipway.ECodeInvalid, "password must be at least 10 characters")
		}
		hash, herr := bcrypt.GenerateFromPassword([]byte(in.Password), bcrypt.DefaultCost)
		if herr != nil {
			return herr
		}
		u = slipway.User{ID: slipway.NewID(slipway.PrefixUser), Email: in.Email, Name: in.Name, CreatedAt: s.now().UTC()}
		if err := tx.CreateUser(ctx, &u, string(hash)); err != nil {
			return err
		}
		m := slipway.Membership{OrgID: a.OrgID, UserID: u.ID, RoleID: role.ID, User: &u, CreatedAt: s.now().UTC()}
		if err := tx.AddMember(ctx, &m); err != nil {
			return err
		}
		res.Membership = &m
		s.audit(ctx, tx, a, "member.add", "user", u.ID, map[string]string{"role": role.Name})
		return nil
	})
	return res, err
}

// MyInvitations lists the invitations waiting for the user's answer, from
// any organisation.
func (s *Service) MyInvitations(ctx context.Context, userID string) ([]slipway.Invitation, error) {
	if userID == "" {
		return nil, slipway.Errorf(slipway.ECodeUnauthenticated, "authentication required")
	}
	return s.store.ListInvitationsForUser(ctx, userID)
}

// AnswerInvitation accepts or declines one of the user's own invitations.
// Another user's invitation is not found.
func (s *Service) AnswerInvitation(ctx context.Context, userID, id string, accept bool) (slipway.Invitation, error) {
	if userID == "" {
		return slipway.Invitation{}, slipway.Errorf(slipway.ECodeUnauthenticated, "authentication required")
	}
	inv, err := s.store.AnswerInvitation(ctx, userID, id, accept)
	if err != nil {
		return inv, err
	}
	action := "member.decline"
	if accept {
		action = "member.accept"
	}
	s.audit(ctx, s.store, Actor{UserID: userID, OrgID: inv.OrgID}, action, "invitation", id, nil)
	return inv, nil
}

// ListInvitations lists the organisation's pending invitations.
func (s *Service) ListInvitations(ctx context.Context, a Actor) ([]slipway.Invitation, error) {
	if err := a.can(slipway.ResMembers, slipway.ActRead); err != nil {
		return nil, err
	}
	return s.store.ListInvitations(ctx, a.OrgID)
}

// WithdrawInvitation deletes a pending invitation of the organisation.
func (s *Service) WithdrawInvitation(ctx context.Context, a Actor, id string) error {
	if err := a.can(slipway.ResMembers, slipway.ActDelete); err != nil {
		return err
	}
	return s.store.DeleteInvitation(ctx, a.OrgID, id)
}

// ListMembers lists the organisation's members.
func (s *Service) ListMembers(ctx context.Context, a Actor, p store.Page) ([]slipway.Membership, int, error) {
	if err := a.can(slipway.ResMembers, slipway.ActRead); err != nil {
		return nil, 0, err
	}
	return s.store.ListMembers(ctx, a.OrgID, p)
}

// UpdateMemberRole changes a member's role.
func (s *Service) UpdateMemberRole(ctx context.Context, a Actor, userID, roleRef string) error {
	if err := a.can(slipway.ResMembers, slipway.ActUpdate); err != nil {
		return err
	}
	role, err := s.findRole(ctx, a.OrgID, roleRef)
	if err != nil {
		return err
	}
	return s.store.UpdateMemberRole(ctx, a.OrgID, userID, role.ID)
}

// RemoveMember removes a member from the organisation.
func (s *Service) RemoveMember(ctx context.Context, a Actor, userID string) error {
	if err := a.can(slipway.ResMembers, slipway.ActDelete); err != nil {
		return err
	}
	if userID == a.UserID {
		return slipway.Errorf(slipway.ECodeConflict, "you cannot remove yourself from the organisation")
	}
	return s.store.RemoveMember(ctx, a.OrgID, userID)
}

func (s *Service) findRole(ctx context.Context, orgID, ref string) (slipway.Role, error) {
	if strings.HasPrefix(ref, slipway.PrefixRole+"_") {
		return s.store.GetRole(ctx, orgID, ref)
	}
	r, err := s.store.GetRoleByName(ctx, orgID, ref)
	if slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
		return slipway.Role{}, slipway.Errorf(slipway.ECodeInvalid, "role %q does not exist", ref)
	}
	return r, err
}

// RoleInput creates or edits a custom role.
type RoleInput struct {
	Name        string              `json:"name"`
	Permissions slipway.Permissions `json:"permissions"`
}

// CreateRole creates a custom role.
func (s *Service) CreateRole(ctx context.Context, a Actor, in RoleInput) (slipway.Role, error) {
	if err := a.can(slipway.ResRoles, slipway.ActCreate); err != nil {
		return slipway.Role{}, err
	}
	if strings.TrimSpace(in.Name) == "" {
		return slipway.Role{}, slipway.Errorf(slipway.ECodeInvalid, "role name is required")
	}
	if err := in.Permissions.Validate(); err != nil {
		return slipway.Role{}, err
	}
	r := slipway.Role{ID: slipway.NewID(slipway.PrefixRole), OrgID: a.OrgID, Name: in.Name, Permissions: in.Permissions, CreatedAt: s.now().UTC()}
	if err := s.store.CreateRole(ctx, &r); err != nil {
		return slipway.Role{}, err
	}
	return r, nil
}

// ListRoles lists the organisation's roles.
func (s *Service) ListRoles(ctx context.Context, a Actor) ([]slipway.Role, error) {
	if err := a.can(slipway.ResRoles, slipway.ActRead); err != nil {
		return nil, err
	}
	return s.store.ListRoles(ctx, a.OrgID)
}

// GetRole returns one role.
func (s *Service) GetRole(ctx context.Context, a Actor, id string) (slipway.Role, error) {
	if err := a.can(slipway.ResRoles, slipway.ActRead); err != nil {
		return slipway.Role{}, err
	}
	return s.store.GetRole(ctx, a.OrgID, id)
}

// UpdateRole edits a custom role. The built-in Admin role cannot be edited.
func (s *Service) UpdateRole(ctx context.Context, a Actor, id string, in RoleInput) (slipway.Role, error) {
	if err := a.can(slipway.ResRoles, slipway.ActUpdate); err != nil {
		return slipway.Role{}, err
	}
	r, err := s.store.GetRole(ctx, a.OrgID, id)
	if err != nil {
		return slipway.Role{}, err
	}
	if r.BuiltIn {
		return slipway.Role{}, slipway.Errorf(slipway.ECodeForbidden, "the built-in %s role cannot be edited", r.Name)
	}
	if in.Name != "" {
		r.Name = in.Name
	}
	if in.Permissions != nil {
		if err := in.Permissions.Validate(); err != nil {
			return slipway.Role{}, err
		}
		r.Permissions = in.Permissions
	}
	if err := s.store.UpdateRole(ctx, &r); err != nil {
		return slipway.Role{}, err
	}
	return r, nil
}

// DeleteRole deletes a custom role that no member holds.
func (s *Service) DeleteRole(ctx context.Context, a Actor, id string) error {
	if err := a.can(slipway.ResRoles, slipway.ActDelete); err != nil {
		return err
	}
	return s.store.DeleteRole(ctx, a.OrgID, id)
}
