// Package e2e holds end-to-end tests: real dms processes on loopback,
// driven through the CLI as a user would (see internal/e2etest).
package e2e
