package vm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/vm/guest"
)

// These tests need neither QEMU nor a kernel.

func TestInitramfsFormat(t *testing.T) {
	var buf bytes.Buffer
	a := NewInitramfs(&buf)
	a.Dir("bin", 0o755)
	a.File("bin/app", 0o755, []byte("hello"))
	a.Symlink("bin/sh", "app")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	type entry struct {
		name string
		mode uint64
		data string
	}
	var got []entry
	b := buf.Bytes()
	for len(b) > 0 {
		if len(b) < 110 || string(b[:6]) != "070701" {
			t.Fatalf("bad header at %d: %q", buf.Len()-len(b), b[:min(len(b), 110)])
		}
		field := func(i int) uint64 { v, _ := strconv.ParseUint(string(b[6+8*i:14+8*i]), 16, 32); return v }
		mode, size, namesize := field(1), int(field(6)), int(field(11))
		name := string(b[110 : 110+namesize-1])
		off := (110 + namesize + 3) &^ 3
		data := string(b[off : off+size])
		b = b[(off+size+3)&^3:]
		if name == "TRAILER!!!" {
			if len(b) != 0 {
				t.Errorf("%d bytes after the trailer", len(b))
			}
			break
		}
		got = append(got, entry{name, mode, data})
	}
	want := []entry{{"bin", 0o40755, ""}, {"bin/app", 0o100755, "hello"}, {"bin/sh", 0o120777, "app"}}
	if !slices.Equal(got, want) {
		t.Errorf("entries = %+v, want %+v", got, want)
	}
	if err := NewInitramfs(&buf).File("/abs", 0o644, nil); err == nil {
		t.Error("an absolute path was accepted")
	}
}

func TestReadConsole(t *testing.T) {
	p := guest.Prefix
	in := strings.Join([]string{
		"[    0.000000] Linux version 6.1",
		"Poking KASLR",
		p + "start",
		p + "o:hello",
		p + "e:oops",
		"[    1.0] a kernel message" + p + "o:after it",
		p + "O:no newline",
		p + "o:" + p + "exit:99", // the payload printing a marker is just output
		p + "exit:3",
		"[    1.5] reboot: Restarting system",
	}, "\n") + "\n"
	var out, errs, boot bytes.Buffer
	st := readConsole(strings.NewReader(in), &out, &errs, &boot, time.Now())
	if !st.started || !st.exited || st.code != 3 || st.oom {
		t.Errorf("state %+v, want started, exited 3", st)
	}
	if want := "hello\nafter it\nno newline" + p + "exit:99\n"; out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}
	if errs.String() != "oops\n" {
		t.Errorf("stderr = %q", errs.String())
	}
	if !strings.Contains(boot.String(), "Linux version") || !strings.Contains(boot.String(), "a kernel message\n") || strings.Contains(boot.String(), "hello") {
		t.Errorf("boot log = %q", boot.String())
	}

	st = readConsole(strings.NewReader(p+"start\n"+p+"exit:137:oom\n"), &out, &errs, &boot, time.Now())
	if !st.oom || st.code != 137 {
		t.Errorf("oom state %+v", st)
	}
	long := strings.Repeat("x", 200<<10)
	out.Reset()
	readConsole(strings.NewReader(p+"o:"+long+"\n"), &out, &errs, &boot, time.Now())
	if out.Len() != len(long)+1 {
		t.Errorf("a 200 KiB line came out as %d bytes", out.Len())
	}
}

func TestGuestSpecRoundTrip(t *testing.T) {
	s := guest.Spec{Args: []string{"/bin/sh", "-c", "echo 'a b' \"c\""}, Env: []string{"A=x y"}, Dir: "/w",
		Mounts: []guest.Mount{{Tag: "dms0", Target: "/out"}}, Root: "/dev/vda"}
	param, err := guest.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(param, " \"'") {
		t.Errorf("parameter %q has characters the kernel command line would split", param)
	}
	got, err := guest.Decode("console=ttyS0 quiet " + param + " other=1")
	if err != nil || !slices.Equal(got.Args, s.Args) || got.Root != s.Root || got.Mounts[0] != s.Mounts[0] {
		t.Errorf("Decode = %+v, %v", got, err)
	}
	for _, bad := range []string{"quiet", guest.CmdlineParam + "=!!!", guest.CmdlineParam + "=e30"} {
		if _, err := guest.Decode(bad); err == nil {
			t.Errorf("Decode(%q) succeeded", bad)
		}
	}
}

func files(t *testing.T) (kernel, initrd, dir string) {
	dir = t.TempDir()
	kernel, initrd = filepath.Join(dir, "vmlinux"), filepath.Join(dir, "initrd")
	os.WriteFile(kernel, []byte("k"), 0o644)
	os.WriteFile(initrd, []byte("i"), 0o644)
	return kernel, initrd, dir
}

func TestValidateAndCommand(t *testing.T) {
	kernel, initrd, dir := files(t)
	e, _ := New(Config{MaxCPUs: 4})
	spec := executor.Spec{
		VM:        &executor.VMImage{Kernel: kernel, Initrd: initrd, Rootfs: initrd, KernelArgs: []string{"loglevel=3"}},
		Command:   []string{"/bin/app"},
		Resources: executor.Resources{CPU: 1500, Memory: 100<<20 + 1},
		Mounts:    []executor.Mount{{Source: dir, Target: "/out"}, {Source: dir, Target: "/in", ReadOnly: true}},
	}
	m, err := e.validate(&spec)
	if err != nil {
		t.Fatal(err)
	}
	if m.cpus != 2 || m.memory != 101<<20 || !strings.Contains(m.cmdline, "loglevel=3 dms.spec=") {
		t.Errorf("machine %+v", m)
	}
	cmd, _ := qemu{path: "qemu", accel: AccelTCG}.command(m)
	args := strings.Join(cmd.Args, " ")
	for _, want := range []string{"-M microvm", "-accel tcg", "-smp 2", "-m 101M", "-no-reboot", "-nic none", "-cpu max",
		"snapshot=on", "virtio-9p-device,fsdev=fs1,mount_tag=dms1", "security_model=none,readonly=on"} {
		if !strings.Contains(args, want) {
			t.Errorf("qemu args lack %q: %s", want, args)
		}
	}
	if got := escape("/a,b"); got != "/a,,b" {
		t.Errorf("escape = %q", got)
	}

	for _, c := range []struct {
		name  string
		edit  func(*executor.Spec)
		field string
	}{
		{"no initrd", func(s *executor.Spec) { s.VM.Initrd = "" }, "vm.initrd"},
		{"missing kernel", func(s *executor.Spec) { s.VM.Kernel = filepath.Join(dir, "nope") }, "vm.kernel"},
		{"image", func(s *executor.Spec) { s.VM, s.Image = nil, "alpine" }, "vm"},
		{"ports", func(s *executor.Spec) { s.Ports = []executor.Port{{Guest: 80}} }, "ports"},
		{"too many cpus", func(s *executor.Spec) { s.Resources.CPU = 8000 }, "resources.cpu"},
		{"too little memory", func(s *executor.Spec) { s.Resources.Memory = 16 << 20 }, "resources.memory"},
		{"mount source", func(s *executor.Spec) { s.Mounts[0].Source = filepath.Join(dir, "nope") }, "mounts[0].source"},
		{"long command", func(s *executor.Spec) { s.Command = []string{strings.Repeat("a", 2000)} }, "command"},
	} {
		s := spec
		vmi := *spec.VM
		s.VM = &vmi
		s.Mounts = slices.Clone(spec.Mounts)
		c.edit(&s)
		if _, err := e.validate(&s); !errors.Is(err, executor.ErrInvalidSpec) || !strings.Contains(err.Error(), c.field+":") {
			t.Errorf("%s: validate = %v, want a %s problem", c.name, err, c.field)
		}
	}
}

func TestNoQEMUIsUnavailable(t *testing.T) {
	kernel, initrd, _ := files(t)
	e, err := New(Config{QEMUPath: "/nonexistent/qemu-system-x86_64"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Start(context.Background(), executor.Spec{VM: &executor.VMImage{Kernel: kernel, Initrd: initrd}, Command: []string{"/x"}})
	if !errors.Is(err, executor.ErrUnavailable) {
		t.Errorf("Start = %v, want ErrUnavailable", err)
	}
	if _, err := New(Config{Accel: "hvf"}); err == nil {
		t.Error("New accepted accel hvf")
	}
}
