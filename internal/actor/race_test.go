//go:build race

package actor

// raceEnabled: under the race detector allocation counts mean nothing.
const raceEnabled = true
