package slipway

import (
	"errors"
	"fmt"
)

// ErrorCode is a stable, machine-readable error identifier exposed by the API
// as the problem document's "code". Codes never change meaning.
type ErrorCode string

// Error codes. The HTTP layer maps each to a status in one function.
const (
	ECodeInvalid           ErrorCode = "invalid"            // 400: malformed or missing input
	ECodeUnauthenticated   ErrorCode = "unauthenticated"    // 401
	ECodeForbidden         ErrorCode = "forbidden"          // 403
	ECodeNotFound          ErrorCode = "not_found"          // 404
	ECodeConflict          ErrorCode = "conflict"           // 409: name taken, state does not allow it
	ECodeInvalidTransition ErrorCode = "invalid_transition" // 409: status machine refused the change
	ECodeGone              ErrorCode = "gone"               // 410: legacy object migrated away
	ECodeTooLarge          ErrorCode = "too_large"          // 413
	ECodeRateLimited       ErrorCode = "rate_limited"       // 429
	ECodeInternal          ErrorCode = "internal"           // 500
	ECodeUnavailable       ErrorCode = "unavailable"        // 503

	// Git side.
	ECodeScopesMissing             ErrorCode = "scopes_missing"              // 422: token lacks scopes (Error.Details["missing"])
	ECodeCredentialsInvalid        ErrorCode = "credentials_invalid"         // 422: token rejected, expired or revoked
	ECodeProviderUnreachable       ErrorCode = "provider_unreachable"        // 502: base URL does not answer
	ECodeProviderError             ErrorCode = "provider_error"              // 502: provider answered with an error we cannot map
	ECodeRepoNotVisible            ErrorCode = "repository_not_visible"      // 422: the integration cannot see the repository
	ECodeRefNotFound               ErrorCode = "ref_not_found"               // 422: branch or tag does not exist
	ECodeIntegrationNeedsAttention ErrorCode = "integration_needs_attention" // 422
	ECodeBadSignature              ErrorCode = "bad_signature"               // 401: webhook signature missing or wrong
	ECodeProjectsReadOnly          ErrorCode = "projects_read_only"          // 409: new legacy Projects are refused
	ECodeAddressNotAllowed         ErrorCode = "address_not_allowed"         // 422: a tenant-chosen URL points where the network policy forbids

	// Hosts.
	ECodeHostReserved     ErrorCode = "host_reserved"     // 409: the control plane's own host, an alias of it, or a name under the base domain
	ECodeHostTaken        ErrorCode = "host_taken"        // 409: another Service holds the host
	ECodeDomainUnverified ErrorCode = "domain_unverified" // 422: the domain's ownership record is missing
)

// Tenant code.
const (
	ECodeOutOfMemory ErrorCode = "out_of_memory" // 422: a build or release was killed at its memory limit
)

// Error is Slipway's error type: a code, a human message, and optionally the
// fix the user should apply. Wrap it with fmt.Errorf("...: %w", err) freely;
// ErrorCodeOf finds it.
type Error struct {
	Code    ErrorCode
	Message string
	Fix     string            // what the user can do about it, if we know
	Details map[string]string // structured extras (e.g. "missing": "write:repository")
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithFix returns e with a suggested fix attached.
func (e *Error) WithFix(fix string) *Error { e.Fix = fix; return e }

// AsError returns the *Error inside err, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// ErrorCodeOf returns the code of the first *Error in err's chain, or
// ECodeInternal when there is none.
func ErrorCodeOf(err error) ErrorCode {
	if err == nil {
		return ""
	}
	if e, ok := AsError(err); ok {
		return e.Code
	}
	return ECodeInternal
}

// ErrorMessageOf returns the user-facing message: the *Error's message, or a
// generic one for internal errors so no internal detail leaks.
func ErrorMessageOf(err error) string {
	if e, ok := AsError(err); ok {
		return e.Message
	}
	return "internal error"
}

// NotFound is the error for a missing (or foreign-organisation) resource.
// Foreign resources are reported exactly like missing ones.
func NotFound(kind, id string) *Error {
	return Errorf(ECodeNotFound, "%s %q not found", kind, id)
}
