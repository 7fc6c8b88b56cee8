//go:build !linux

package wasm

// mapMemory is Linux only; elsewhere memory lives on the Go heap.
func mapMemory(size uint64) ([]byte, bool) { return nil, false }

func unmapMemory([]byte) {}
