// Package featureenv runs dms nodes in Docker containers grouped in regions.
package featureenv

import "errors"

// ErrUnsupported is returned by Start when this machine cannot run the
// environment (no Docker engine, not root, a tool missing); the message
// says what is missing. Tests skip on it.
var ErrUnsupported = errors.New("feature environment unsupported here")
