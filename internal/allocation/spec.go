package allocation

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
)

// Labels the allocation puts on its executor instances, beside
// executor.LabelAllocation (the allocation ID).
const (
	// LabelDeployment names the deployment.
	LabelDeployment = "dms.deployment"
	// LabelNode is the host (peer ID) of the node that started the
	// instance, so that nodes sharing one Docker engine (a devnet) never
	// re-attach to each other's containers.
	LabelNode = "dms.node"
)

// DefaultPIDs limits the processes of a docker allocation.
const DefaultPIDs = 1024

// Restart policy defaults, as the ensemble documents them.
const (
	defaultMaxRestarts = 5
	defaultBackoff     = time.Second
	maxBackoff         = time.Minute
)

// Healthcheck defaults, as the ensemble documents them.
const (
	defaultHealthInterval = 10 * time.Second
	defaultHealthTimeout  = 5 * time.Second
	defaultHealthRetries  = 3
)

var (
	idPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$`)
	digestPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// checkID refuses an ID that is not a safe inbox and directory name.
func checkID(what, id string) error {
	if !idPattern.MatchString(id) || strings.Contains(id, "..") {
		return fmt.Errorf("%s %q: want 1-120 letters, digits, '.', '_' or '-', starting with a letter or digit", what, id)
	}
	return nil
}

// checkSpec checks what can be checked of s before anything is fetched or
// started, and returns every problem at once.
func (m *Manager) checkSpec(s *deployproto.AllocationSpec) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.Name == "" {
		bad("name: empty")
	}
	ex, ok := m.cfg.Executors[s.Executor]
	if !ok {
		bad("executor %q is not available on this node (have %s)", s.Executor, m.executorNames())
	}
	x := &s.Execution
	switch s.Executor {
	case ensemble.Docker:
		if x.Image == "" {
			bad("execution.image: required for docker")
		}
	case ensemble.Wasm:
		if !digestPattern.MatchString(x.Module) {
			bad("execution.module: %q is not a content reference sha256:<64 hex digits>", x.Module)
		}
	case ensemble.VM:
		if x.Kernel == "" && m.cfg.DefaultKernel == "" {
			bad("execution.kernel: required (this node has no default kernel)")
		}
		for _, f := range []struct{ name, ref string }{{"kernel", x.Kernel}, {"initrd", x.Initrd}, {"rootfs", x.Rootfs}} {
			if f.ref != "" && !digestPattern.MatchString(f.ref) {
				bad("execution.%s: %q is not a content reference sha256:<64 hex digits>", f.name, f.ref)
			}
		}
	}
	for i, p := range s.Ports {
		if p.Port < 1 || p.Port > 65535 {
			bad("ports[%d].port: %d is not 1-65535", i, p.Port)
		}
		if p.Public < 0 || p.Public > 65535 {
			bad("ports[%d].public: %d is not 1-65535", i, p.Public)
		}
		if p.Public != 0 && s.Executor != ensemble.Docker {
			bad("ports[%d]: the %s executor cannot publish ports", i, s.Executor)
		}
	}
	for _, name := range sortedKeys(s.Volumes) {
		v := s.Volumes[name]
		if err := checkID("volume name", name); err != nil {
			bad("volumes: %w", err)
		}
		if err := checkVolume(v); err != nil {
			bad("volumes.%s: %w", name, err)
		}
		if !path.IsAbs(v.Path) {
			bad("volumes.%s.path: %q is not an absolute path", name, v.Path)
		}
	}
	if h := s.Healthcheck; h != nil {
		n := 0
		if len(h.Exec) > 0 {
			n++
			if _, ok := ex.(executor.Execer); ex != nil && !ok {
				bad("healthcheck.exec: the %s executor cannot run commands in an instance", s.Executor)
			}
		}
		for _, probe := range []struct {
			kind string
			set  bool
			port int
		}{{"http", h.HTTP != nil, portOf(h.HTTP)}, {"tcp", h.TCP != nil, portOfTCP(h.TCP)}} {
			if !probe.set {
				continue
			}
			n++
			if s.Executor != ensemble.Docker {
				bad("healthcheck.%s: the %s executor publishes no port to probe", probe.kind, s.Executor)
			} else if !slices.ContainsFunc(s.Ports, func(p ensemble.Port) bool { return p.Port == probe.port }) {
				bad("healthcheck.%s.port: %d is not one of the allocation's ports", probe.kind, probe.port)
			}
		}
		if n != 1 {
			bad("healthcheck: give exactly one of exec, http and tcp (have %d)", n)
		}
		if h.Interval < 0 || h.Timeout < 0 || h.StartPeriod < 0 || h.Retries < 0 {
			bad("healthcheck: negative interval, timeout, start_period or retries")
		}
	}
	switch s.Restart.Policy {
	case "", ensemble.Never, ensemble.OnFailure, ensemble.Always:
	default:
		bad("restart.policy: %q is not never, on-failure or always", s.Restart.Policy)
	}
	if s.Restart.MaxRestarts < 0 || s.Restart.Backoff < 0 {
		bad("restart: negative max_restarts or backoff")
	}
	if s.Timeout < 0 {
		bad("timeout: negative (%s)", s.Timeout)
	}
	if err := m.checkSubnet(s); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func portOf(h *ensemble.HTTPProbe) int {
	if h == nil {
		return 0
	}
	return h.Port
}

func portOfTCP(t *ensemble.TCPProbe) int {
	if t == nil {
		return 0
	}
	return t.Port
}

func (m *Manager) executorNames() string {
	names := make([]string, 0, len(m.cfg.Executors))
	for k := range m.cfg.Executors {
		names = append(names, string(k))
	}
	if len(names) == 0 {
		return "none"
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// artifacts returns the content references the execution needs fetched.
func artifacts(s *deployproto.AllocationSpec) []string {
	var out []string
	x := &s.Execution
	switch s.Executor {
	case ensemble.Wasm:
		out = append(out, x.Module)
	case ensemble.VM:
		for _, ref := range []string{x.Kernel, x.Initrd, x.Rootfs} {
			if ref != "" {
				out = append(out, ref)
			}
		}
	}
	return out
}

// buildSpec turns the allocation into an executor spec; files maps each
// artifact reference to its cached file.
func (a *alloc) buildSpec(files map[string]string) (executor.Spec, error) {
	rec := a.record()
	s := &rec.Spec
	x := &s.Execution
	spec := executor.Spec{
		Env: maps.Clone(map[string]string(x.Env)),
		Resources: executor.Resources{
			CPU:    s.Resources.CPU,
			Memory: s.Resources.RAM,
			Disk:   s.Resources.Disk,
			GPUs:   slices.Clone(s.Resources.GPUs),
		},
		Labels: map[string]string{
			executor.LabelAllocation: rec.ID,
			LabelDeployment:          rec.Deployment,
			LabelNode:                a.m.cfg.System.Self(),
		},
		Timeout: s.Timeout,
	}
	switch s.Executor {
	case ensemble.Docker:
		spec.Image = x.Image
		spec.Entrypoint = slices.Clone(x.Entrypoint)
		spec.Command = slices.Clone(x.Cmd)
		// No command in the ensemble: the image's own runs.
		spec.ImageDefaults = len(x.Entrypoint) == 0 && len(x.Cmd) == 0
		spec.WorkDir = x.Workdir
		spec.Resources.PIDs = DefaultPIDs
		for _, p := range s.Ports {
			ep := executor.Port{Guest: uint16(p.Port), Host: uint16(p.Public), Protocol: string(p.Protocol)}
			if p.Public == 0 {
				// Not public: published on loopback only, for health
				// checks and the node's own use.
				ep.HostIP = "127.0.0.1"
			}
			spec.Ports = append(spec.Ports, ep)
		}
	case ensemble.Wasm:
		b, err := os.ReadFile(files[x.Module])
		if err != nil {
			return executor.Spec{}, fmt.Errorf("read module %s: %w", x.Module, err)
		}
		spec.Module = b
		spec.Command = append([]string{rec.Name}, x.Args...)
		spec.WorkDir = x.Workdir
	case ensemble.VM:
		vm := &executor.VMImage{Kernel: a.m.cfg.DefaultKernel, KernelArgs: strings.Fields(x.KernelArgs)}
		if x.Kernel != "" {
			vm.Kernel = files[x.Kernel]
		}
		if x.Initrd != "" {
			vm.Initrd = files[x.Initrd]
		}
		if x.Rootfs != "" {
			vm.Rootfs = files[x.Rootfs]
		}
		spec.VM = vm
		spec.Command = slices.Clone(x.Cmd)
	default:
		return executor.Spec{}, fmt.Errorf("executor %q is not supported", s.Executor)
	}
	// The volumes were mounted and staged by prepareVolumes. Inputs and
	// url volumes are read-only in every executor.
	for _, name := range sortedKeys(s.Volumes) {
		v := s.Volumes[name]
		spec.Mounts = append(spec.Mounts, executor.Mount{Source: a.volumeDir(name), Target: v.Path, ReadOnly: readOnly(v)})
	}
	if err := a.joinSubnet(&rec, &spec); err != nil {
		return executor.Spec{}, err
	}
	return spec, nil
}

// restartPolicy returns the spec's restart policy with the ensemble's
// defaults filled in.
func restartPolicy(s *deployproto.AllocationSpec) (policy ensemble.RestartPolicy, maxRestarts int, backoff time.Duration) {
	policy, maxRestarts, backoff = s.Restart.Policy, s.Restart.MaxRestarts, s.Restart.Backoff
	if policy == "" {
		policy = ensemble.Never
		if s.Type == ensemble.Service {
			policy = ensemble.Always
		}
	}
	if policy == ensemble.Never {
		return policy, 0, 0
	}
	if maxRestarts == 0 {
		maxRestarts = defaultMaxRestarts
	}
	if backoff == 0 {
		backoff = defaultBackoff
	}
	return policy, maxRestarts, backoff
}

// backoffFor returns the delay before restart n (1-based): the backoff
// doubled each time, at most a minute.
func backoffFor(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// succeeded reports whether a run ended by itself with exit code 0.
func succeeded(r executor.Result) bool {
	return r.Reason == executor.ReasonExited && r.ExitCode == 0
}

// describe says in a few words how a run ended.
func describe(r executor.Result) string {
	switch r.Reason {
	case executor.ReasonExited:
		return "exited with code " + strconv.Itoa(r.ExitCode)
	case executor.ReasonFailed:
		if r.Error != "" {
			return "failed: " + r.Error
		}
		return "failed"
	default:
		s := string(r.Reason)
		if r.Error != "" {
			s += ": " + r.Error
		}
		return s
	}
}

// sortedKeys returns m's keys, sorted: one allocation, none for an empty
// map (slices.Sorted(maps.Keys(m)) makes its iterators and grows its slice).
func sortedKeys[V any](m map[string]V) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
