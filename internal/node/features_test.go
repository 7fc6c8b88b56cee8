package node

import (
	"slices"
	"testing"
)

// TestWithFeatures: a node offers "vm/kernel" beside "vm" exactly when it
// has a default kernel, so vm jobs that bring none find it.
func TestWithFeatures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kernel string
		in     []string
		want   []string
	}{
		{"vm with a kernel", "/boot/vmlinuz", []string{"wasm", "vm"}, []string{"vm", "vm/kernel", "wasm"}},
		{"vm without a kernel", "", []string{"vm", "wasm"}, []string{"vm", "wasm"}},
		{"a kernel but no vm", "/boot/vmlinuz", []string{"docker", "wasm"}, []string{"docker", "wasm"}},
		{"already there", "/boot/vmlinuz", []string{"vm", "vm/kernel"}, []string{"vm", "vm/kernel"}},
		{"none", "/boot/vmlinuz", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &Node{}
			n.cfg.Config.Executor.VM.Kernel = tc.kernel
			if got := n.withFeatures(slices.Clone(tc.in)); !slices.Equal(got, tc.want) {
				t.Errorf("withFeatures(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
