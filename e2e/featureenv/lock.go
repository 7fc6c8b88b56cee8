//go:build linux

package featureenv

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lockPath is the file whose flock one running environment holds. It is
// fixed, not under $TMPDIR: two processes with different TMPDIRs must
// still exclude each other, or one would remove the other's environment
// as stale.
const lockPath = "/tmp/dms-featureenv.lock"

// lockMachine waits (within ctx) until no other environment runs on this
// machine and returns the function that lets the next one run. The lock
// dies with its process, so a run that crashed does not block the next;
// what it left behind is removed by the next Start.
func lockMachine(ctx context.Context, logf func(string, ...any)) (func(), error) {
	path := lockPath
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the machine lock: %w", err)
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	start, told := time.Now(), false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			if told {
				logf("featureenv: the other environment closed after %s", time.Since(start).Round(time.Second))
			}
			return func() {
				unix.Flock(int(f.Fd()), unix.LOCK_UN)
				f.Close()
			}, nil
		}
		if err != unix.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !told {
			logf("featureenv: another feature environment runs on this machine (%s is locked): waiting for it to close", path)
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for the other feature environment on this machine (%s): %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}
