package docker_test

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor/docker"
	"github.com/dmsnet/dms/internal/poll"
)

// The sandbox's program is a well-formed static ELF file for each
// architecture it is made for, and none is made for the others.
func TestWaitProgramIsELF(t *testing.T) {
	for _, tc := range []struct {
		arch    string
		machine elf.Machine
	}{{"amd64", elf.EM_X86_64}, {"arm64", elf.EM_AARCH64}, {"riscv64", 0}, {"386", 0}} {
		t.Run(tc.arch, func(t *testing.T) {
			prog := docker.WaitProgram(tc.arch)
			if tc.machine == 0 {
				if prog != nil || docker.SandboxTar(tc.arch) != nil {
					t.Fatalf("a program for %s, which has none", tc.arch)
				}
				return
			}
			f, err := elf.NewFile(bytes.NewReader(prog))
			if err != nil {
				t.Fatal(err)
			}
			if f.Machine != tc.machine || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC || len(f.Progs) != 1 {
				t.Fatalf("machine %v class %v type %v, %d segments", f.Machine, f.Class, f.Type, len(f.Progs))
			}
			p := f.Progs[0]
			if p.Type != elf.PT_LOAD || p.Flags != elf.PF_R|elf.PF_X || p.Filesz != uint64(len(prog)) || p.Off != 0 {
				t.Fatalf("segment %+v for a file of %d bytes", p.ProgHeader, len(prog))
			}
			if f.Entry < p.Vaddr+64+56 || f.Entry >= p.Vaddr+p.Filesz {
				t.Fatalf("entry %#x outside the code", f.Entry)
			}
			if !bytes.Equal(docker.SandboxTar(tc.arch), docker.SandboxTar(tc.arch)) {
				t.Fatal("the image's file system differs between two calls: its reference would change")
			}
		})
	}
}

// On this machine's architecture the program waits: it runs, sleeps in
// the kernel and does not exit until killed.
func TestWaitProgramWaits(t *testing.T) {
	prog := docker.WaitProgram(runtime.GOARCH)
	if prog == nil {
		t.Skipf("no sandbox program for %s", runtime.GOARCH)
	}
	path := filepath.Join(t.TempDir(), "wait")
	if err := os.WriteFile(path, prog, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stat := filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "stat")
	poll.Eventually(t, 10*time.Second, "the program sleeping", func() bool {
		b, err := os.ReadFile(stat)
		if err != nil {
			return false
		}
		// pid (comm) S ...
		i := bytes.LastIndexByte(b, ')')
		return i > 0 && i+2 < len(b) && b[i+2] == 'S'
	})
	select {
	case err := <-exited:
		t.Fatalf("the program exited: %v", err)
	default:
	}
	cmd.Process.Kill()
	if err := <-exited; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("after a kill: %v", err)
	}
}
