package cli

import "github.com/dmsnet/dms/internal/identity"

// initTrust records the default trust of a new home: the node trusts its own
// user key as root for /dms, and nothing else.
func (a *app) initTrust(user identity.DID) error { return a.capDefaults(user) }
