package node

import "context"

// startResources detects the machine and opens the resource accounting.
// (Filled in by the onboarding work.)
func (n *Node) startResources(ctx context.Context) error { return nil }

// addResourceBehaviors registers /dms/node/onboarding/* and
// /dms/node/resources/* on the root actor.
func (n *Node) addResourceBehaviors() {}
