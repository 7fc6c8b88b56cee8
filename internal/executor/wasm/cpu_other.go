//go:build !linux

package wasm

import (
	"errors"
	"time"

	"github.com/dmsnet/dms/internal/match"
)

// cpuGroups needs Linux cgroups; elsewhere the CPU of a module is not
// limited.
type cpuGroups struct{}

type cpuGroup struct{}

func newCPUGroups(string) (*cpuGroups, error) {
	return nil, errors.New("cgroups are Linux only")
}

func (*cpuGroups) close() error { return nil }
func (*cpuGroups) group(string, match.MilliCPU) (*cpuGroup, error) {
	return nil, errors.New("cgroups are Linux only")
}
func (*cpuGroup) enter() error     { return nil }
func (*cpuGroup) leave() error     { return nil }
func (*cpuGroup) remove() error    { return nil }
func (*cpuGroup) throttled() int64 { return -1 }

func threadCPU() time.Duration { return 0 }

func threadID() int                         { return 0 }
func threadCPUOf(int) (time.Duration, bool) { return 0, false }
