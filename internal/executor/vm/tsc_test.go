package vm

import (
	"runtime"
	"testing"
)

func TestTSCKHz(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("amd64 only")
	}
	khz := tscKHz()
	t.Logf("TSC: %d kHz", khz)
	if khz < 100_000 || khz > 10_000_000 {
		t.Errorf("TSC frequency %d kHz is not between 100 MHz and 10 GHz", khz)
	}
}
