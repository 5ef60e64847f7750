package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// RecordSignInFailure counts one failed sign-in under key and returns the
// count. A key whose last failure is older than forgetBefore starts again
// at one, so failures long past never add up to a lockout. One statement,
// so concurrent replicas cannot lose a count.
func (q *queries) RecordSignInFailure(ctx context.Context, key string, at, forgetBefore time.Time) (int, error) {
	var n int
	err := q.queryRow(ctx, `INSERT INTO sign_in_failures (throttle_key, failures, last_failure_at) VALUES (?, 1, ?)
ON CONFLICT (throttle_key) DO UPDATE SET
    failures = CASE WHEN sign_in_failures.last_failure_at < ? THEN 1 ELSE sign_in_failures.failures + 1 END,
    last_failure_at = excluded.last_failure_at
RETURNING failures`, key, q.tv(at), q.tv(forgetBefore)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("record sign-in failure: %w", err)
	}
	return n, nil
}

// SignInFailures returns how many failed sign-ins key has and when the
// last one was; zero when it has none.
func (q *queries) SignInFailures(ctx context.Context, key string) (int, time.Time, error) {
	var (
		n    int
		last time.Time
	)
	err := q.queryRow(ctx, `SELECT failures, last_failure_at FROM sign_in_failures WHERE throttle_key = ?`, key).
		Scan(&n, timeCol{&last})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("read sign-in failures: %w", err)
	}
	return n, last, nil
}

// ClearSignInFailures forgets key's failures (after a successful sign-in).
func (q *queries) ClearSignInFailures(ctx context.Context, key string) error {
	_, err := q.exec(ctx, `DELETE FROM sign_in_failures WHERE throttle_key = ?`, key)
	return wrapErr("clear sign-in failures", err)
}

// DeleteSignInFailuresBefore removes keys whose last failure is older than
// before, and returns how many.
func (q *queries) DeleteSignInFailuresBefore(ctx context.Context, before time.Time) (int, error) {
	res, err := q.exec(ctx, `DELETE FROM sign_in_failures WHERE last_failure_at < ?`, q.tv(before))
	if err != nil {
		return 0, fmt.Errorf("delete old sign-in failures: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), wrapErr("delete old sign-in failures", err)
}
