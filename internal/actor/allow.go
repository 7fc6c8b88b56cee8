package actor

import (
	"time"

	"github.com/dmsnet/dms/internal/identity"
)

// AllowAll authorizes every envelope and issues empty-looking invocations.
// It is a test aid for code that exercises the runtime without
// capabilities; the node always uses internal/cap.
type AllowAll struct{}

// Authorize accepts any invocation.
func (AllowAll) Authorize([]byte, AuthRequest) (Grant, error) { return allowGrant{}, nil }

// Issue returns a placeholder invocation.
func (AllowAll) Issue(from *identity.Key, p IssueParams) ([]byte, error) {
	return []byte("allow:" + p.Cmd), nil
}

type allowGrant struct{}

func (allowGrant) Check(time.Time, []byte) error { return nil }
func (allowGrant) Expiry() time.Time             { return time.Time{} }
