package executor_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/match"
)

func good() executor.Spec {
	return executor.Spec{Image: "busybox:1.36", Command: []string{"echo", "hi"}}
}

func TestValidate(t *testing.T) {
	neg := int64(-1 << 20)
	for _, c := range []struct {
		name string
		edit func(*executor.Spec)
		want []string // fields named in the error, in order; none means valid
	}{
		{"image and command", func(s *executor.Spec) {}, nil},
		{"module", func(s *executor.Spec) { s.Image, s.Module = "", []byte("\x00asm") }, nil},
		{"vm", func(s *executor.Spec) { s.Image, s.VM = "", &executor.VMImage{Kernel: "/k", Initrd: "/i"} }, nil},
		{"entrypoint only", func(s *executor.Spec) { s.Entrypoint, s.Command = []string{"/app"}, nil }, nil},
		{"everything", func(s *executor.Spec) {
			s.Env = map[string]string{"A": "1"}
			s.WorkDir = "/work"
			s.Resources = executor.Resources{CPU: 1500, Memory: 512 << 20, PIDs: 100, Disk: 1 << 30,
				GPUs: []match.GPU{{Index: 0, Vendor: "nvidia"}, {Index: 1, Vendor: "nvidia"}}}
			s.Ports = []executor.Port{{Guest: 80}, {Guest: 80, Protocol: "udp"}}
			s.Mounts = []executor.Mount{{Source: "/srv/in", Target: "/in", ReadOnly: true}}
			s.Network = executor.NetworkBridge
			s.Labels = map[string]string{executor.LabelAllocation: "a1"}
			s.Timeout = time.Minute
		}, nil},
		{"missing image", func(s *executor.Spec) { s.Image = "" }, []string{"image"}},
		{"two sources", func(s *executor.Spec) { s.Module = []byte{1} }, []string{"image"}},
		{"empty module", func(s *executor.Spec) { s.Image, s.Module = "", []byte{} }, []string{"module"}},
		{"vm without kernel", func(s *executor.Spec) { s.Image, s.VM = "", &executor.VMImage{Initrd: "rel"} }, []string{"vm.kernel", "vm.initrd"}},
		{"empty command", func(s *executor.Spec) { s.Command = nil }, []string{"command"}},
		{"empty program", func(s *executor.Spec) { s.Command = []string{"", "x"} }, []string{"command"}},
		{"negative memory", func(s *executor.Spec) { s.Resources.Memory = match.Bytes(neg) }, []string{"resources.memory"}},
		{"negative cpu and pids", func(s *executor.Spec) { s.Resources.CPU, s.Resources.PIDs = -1, -1 }, []string{"resources.cpu", "resources.pids"}},
		{"bad gpu", func(s *executor.Spec) {
			s.Resources.GPUs = []match.GPU{{Vendor: "3dfx"}, {Index: 0, Vendor: "amd"}}
		}, []string{"resources.gpus[0].vendor", "resources.gpus[1].index"}},
		{"bad env", func(s *executor.Spec) { s.Env = map[string]string{"A=B": "x"} }, []string{"env"}},
		{"relative workdir", func(s *executor.Spec) { s.WorkDir = "work" }, []string{"workdir"}},
		{"bad ports", func(s *executor.Spec) {
			s.Ports = []executor.Port{{Guest: 0}, {Guest: 53, Protocol: "sctp"}, {Guest: 80}, {Guest: 80, Protocol: "tcp"}}
		}, []string{"ports[0].guest", "ports[1].protocol", "ports[3]"}},
		{"ports without network", func(s *executor.Spec) {
			s.Network, s.Ports = executor.NetworkNone, []executor.Port{{Guest: 80}}
		}, []string{"ports"}},
		{"bad mounts", func(s *executor.Spec) {
			s.Mounts = []executor.Mount{{Source: "rel", Target: "/a"}, {Source: "/x", Target: "b"}, {Source: "/x", Target: "/"}, {Source: "/y", Target: "/a/"}}
		}, []string{"mounts[0].source", "mounts[1].target", "mounts[2].target", "mounts[3].target"}},
		{"bad network", func(s *executor.Spec) { s.Network = "overlay" }, []string{"network"}},
		{"reserved label", func(s *executor.Spec) { s.Labels = map[string]string{executor.LabelManaged: "x"} }, []string{"labels"}},
		{"negative timeout", func(s *executor.Spec) { s.Timeout = -time.Second }, []string{"timeout"}},
		{"every problem at once", func(s *executor.Spec) {
			s.Image, s.Command, s.Resources.Memory = "", nil, match.Bytes(neg)
		}, []string{"image", "command", "resources.memory"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := good()
			c.edit(&s)
			err := s.Validate()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var ve *executor.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, executor.ErrInvalidSpec) {
				t.Fatalf("Validate() = %v, want a *ValidationError", err)
			}
			var got []string
			for _, p := range ve.Problems {
				got = append(got, p.Field)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("Validate() problems = %v, want fields %v (%v)", got, c.want, err)
			}
		})
	}
}

func TestValidationErrorText(t *testing.T) {
	s := executor.Spec{}
	err := s.Validate()
	want := "invalid spec: image: missing: give an image (docker), a module (wasm) or a vm kernel (vm); command: empty: give the program to run and its arguments"
	if err == nil || err.Error() != want {
		t.Errorf("Validate() = %v, want %q", err, want)
	}
}

func TestArgvDoesNotAlias(t *testing.T) {
	s := executor.Spec{Entrypoint: make([]string, 1, 4), Command: []string{"a"}}
	s.Entrypoint[0] = "/bin/sh"
	argv := s.Argv()
	argv[1] = "changed"
	if s.Command[0] != "a" || len(s.Entrypoint) != 1 {
		t.Errorf("Argv changed the spec: %+v", s)
	}
}

func TestSpecJSONRefusesNegativeMemory(t *testing.T) {
	var s executor.Spec
	err := json.Unmarshal([]byte(`{"image":"x","command":["y"],"resources":{"memory":"-512MiB"}}`), &s)
	if err == nil || !strings.Contains(err.Error(), "negative") {
		t.Errorf("Unmarshal = %v, want a 'negative' error", err)
	}
}

// FuzzSpecValidate: a Spec decoded from any JSON validates without
// panicking, and an accepted spec has a program to run.
func FuzzSpecValidate(f *testing.F) {
	f.Add([]byte(`{"image":"x","command":["y"]}`))
	f.Add([]byte(`{"vm":{"kernel":"/k"},"entrypoint":[""],"mounts":[{"source":"/a","target":"/"}]}`))
	f.Add([]byte(`{"module":"AGFzbQ==","command":["m"],"resources":{"cpu":-1,"gpus":[{"vendor":"amd","index":-1}]},"ports":[{"guest":1,"protocol":"x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s executor.Spec
		if json.Unmarshal(data, &s) != nil {
			return
		}
		if s.Validate() == nil {
			if argv := s.Argv(); len(argv) == 0 || argv[0] == "" {
				t.Errorf("accepted a spec with no program: %+v", s)
			}
		}
	})
}
