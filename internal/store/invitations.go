package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"slipway.dev/slipway"
)

// CreateInvitation invites an existing user into an organisation with one
// of its roles. A second invitation of the same user to the same
// organisation, or an invitation of a member, is a conflict.
func (q *queries) CreateInvitation(ctx context.Context, inv *slipway.Invitation) error {
	if inv.ID == "" {
		inv.ID = slipway.NewID(slipway.PrefixInvitation)
	}
	inv.CreatedAt = orNow(inv.CreatedAt)
	return q.atomic(ctx, func(q *queries) error {
		n, err := q.count(ctx, `SELECT COUNT(*) FROM memberships WHERE org_id = ? AND user_id = ?`, inv.OrgID, inv.UserID)
		if err != nil {
			return fmt.Errorf("create invitation: %w", err)
		}
		if n > 0 {
			return slipway.Errorf(slipway.ECodeConflict, "user %q is already a member", inv.UserID)
		}
		_, err = q.exec(ctx, `INSERT INTO invitations (id, org_id, user_id, role_id, invited_by, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			inv.ID, inv.OrgID, inv.UserID, inv.RoleID, inv.InvitedBy, q.tv(inv.CreatedAt))
		if isForeignKeyViolation(err) {
			return slipway.Errorf(slipway.ECodeNotFound, "organisation, user or role not found")
		}
		return conflictOr(err, "create invitation", "user %q is already invited", inv.UserID)
	})
}

const invitationColumns = `i.id, i.org_id, o.name, i.user_id, i.role_id, r.name, i.invited_by, i.created_at`

const invitationFrom = ` FROM invitations i JOIN organisations o ON o.id = i.org_id JOIN roles r ON r.id = i.role_id AND r.org_id = i.org_id`

func scanInvitation(sc rowScanner) (slipway.Invitation, error) {
	var inv slipway.Invitation
	err := sc.Scan(&inv.ID, &inv.OrgID, &inv.OrgName, &inv.UserID, &inv.RoleID, &inv.RoleName, &inv.InvitedBy, timeCol{&inv.CreatedAt})
	return inv, err
}

// ListInvitationsForUser returns the invitations waiting for userID's
// answer, oldest first. It is scoped by the invited user, not by an
// organisation: it is how a user learns which organisations invited them.
func (q *queries) ListInvitationsForUser(ctx context.Context, userID string) ([]slipway.Invitation, error) {
	out, err := queryAll(ctx, q, scanInvitation, `SELECT `+invitationColumns+invitationFrom+` WHERE i.user_id = ? ORDER BY i.created_at, i.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list invitations: %w", err)
	}
	return out, nil
}

// ListInvitations returns an organisation's pending invitations.
func (q *queries) ListInvitations(ctx context.Context, orgID string) ([]slipway.Invitation, error) {
	out, err := queryAll(ctx, q, scanInvitation, `SELECT `+invitationColumns+invitationFrom+` WHERE i.org_id = ? ORDER BY i.created_at, i.id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list invitations: %w", err)
	}
	return out, nil
}

// AnswerInvitation accepts (adding the membership) or declines userID's
// invitation id; either way the invitation is gone afterwards. Another
// user's invitation is not found.
func (q *queries) AnswerInvitation(ctx context.Context, userID, id string, accept bool) (slipway.Invitation, error) {
	var inv slipway.Invitation
	err := q.atomic(ctx, func(q *queries) error {
		var err error
		inv, err = scanInvitation(q.queryRow(ctx, `SELECT `+invitationColumns+invitationFrom+` WHERE i.user_id = ? AND i.id = ?`, userID, id))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("invitation", id)
		}
		if err != nil {
			return fmt.Errorf("get invitation: %w", err)
		}
		if err := q.execOne(ctx, "invitation", id, `DELETE FROM invitations WHERE user_id = ? AND id = ?`, userID, id); err != nil {
			return wrapErr("answer invitation", err)
		}
		if !accept {
			return nil
		}
		return q.AddMember(ctx, &slipway.Membership{OrgID: inv.OrgID, UserID: userID, RoleID: inv.RoleID})
	})
	return inv, err
}

// DeleteInvitation withdraws an organisation's invitation.
func (q *queries) DeleteInvitation(ctx context.Context, orgID, id string) error {
	return wrapErr("delete invitation", q.execOne(ctx, "invitation", id, `DELETE FROM invitations WHERE org_id = ? AND id = ?`, orgID, id))
}
