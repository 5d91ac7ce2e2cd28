package coordinator

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors callers can test for with errors.Is. Each is wrapped with the
// operation that failed.
var (
	// ErrNotOwner means the caller no longer holds the claim: its lease
	// expired or passed its local deadline, someone else owns the work now,
	// or the claim was already finished, handed off or released.
	ErrNotOwner = errors.New("coordinator: not owner")
	// ErrConflict means a broadcast with this id exists with another spec;
	// the existing one is untouched.
	ErrConflict = errors.New("coordinator: broadcast exists with a different spec")
	// ErrNotFound means no broadcast has this id.
	ErrNotFound = errors.New("coordinator: broadcast not found")
	// ErrBadTransition means the requested state change is not allowed
	// from the broadcast's current state.
	ErrBadTransition = errors.New("coordinator: state transition not allowed")
	// ErrInvalidID means a broadcast or member id does not fit the
	// contract: 1 to 128 characters of [A-Za-z0-9._-].
	ErrInvalidID = errors.New("coordinator: invalid id")
	// ErrCursorBackwards means a progress report would move a slot's
	// cursor behind what is already recorded.
	ErrCursorBackwards = errors.New("coordinator: cursor moves backwards")
	// ErrBadProgress means a progress report cannot be recorded as it is:
	// too many pending records, or pending records not before the cursor.
	ErrBadProgress = errors.New("coordinator: bad progress")
	// ErrInvalidConfig means a Config failed validation.
	ErrInvalidConfig = errors.New("coordinator: invalid config")
	// ErrAlreadyRunning means Run was called twice on one Coordinator.
	ErrAlreadyRunning = errors.New("coordinator: already running")
)

// IsTransient reports whether err is a failure to get an answer from etcd
// rather than an answer: etcd unreachable, no leader or an election under
// way, a request that timed out, too many requests, or no space left until
// an operator compacts. A claim write that failed this way may or may not
// have been applied, and writing it again is safe: every claim write proves
// ownership first, so the retry of one that did land fails with
// ErrNotOwner. A write whose claims kept changing under it is transient
// too. ErrNotOwner, ErrCursorBackwards, ErrBadProgress, a refused request
// (too large, not permitted) and a closed client are not.
func IsTransient(err error) bool {
	switch {
	case err == nil, errors.Is(err, ErrNotOwner), errors.Is(err, ErrCursorBackwards), errors.Is(err, ErrBadProgress):
		return false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, errContended):
		return true
	}
	// etcd's own errors arrive as rpctypes.EtcdError; failures below it
	// (a connection refused) as gRPC statuses.
	var code codes.Code
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	} else {
		return false
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}

// maxIDLen is the longest broadcast or member id.
const maxIDLen = 128

// CheckID returns nil if id is 1 to 128 characters of [A-Za-z0-9._-],
// the contract for broadcast ids; member ids follow it too. The
// coordinator owns the rule because both become single etcd key segments.
// A refusal wraps ErrInvalidID and says what is wrong, after the
// ErrInvalidID text and ": ".
func CheckID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: required", ErrInvalidID)
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("%w: %d characters, more than %d", ErrInvalidID, len(id), maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !idChar(c) {
			return fmt.Errorf("%w: character %q at %d: only A-Z a-z 0-9 . _ - are allowed", ErrInvalidID, c, i)
		}
	}
	return nil
}

func idChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}
