package wasm

import "syscall"

// mapMemory maps size bytes of anonymous memory that reserves no swap.
func mapMemory(size uint64) ([]byte, bool) {
	if size == 0 || size > 1<<32 {
		return nil, false
	}
	b, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	return b, err == nil
}

func unmapMemory(b []byte) { syscall.Munmap(b) }
