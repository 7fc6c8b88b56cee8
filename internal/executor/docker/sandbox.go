package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"runtime"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/subnet"
)

// Network sandboxes (issue 20, part 4: submit → running at parity with
// `docker run`).
//
// A container that joins a user-defined network such as the job network
// pays, at its start, for Docker's setup of a new network namespace on it:
// the veth pair, the endpoint, and the embedded DNS resolver, whose
// rules dockerd installs by re-executing itself and iptables inside the
// namespace. On a loaded machine that is hundreds of milliseconds — more
// than a whole `docker run` on Docker's default bridge, which has no
// embedded resolver. The executor keeps that setup off a start's path: it
// keeps one sandbox ready, a tiny container already running on the job
// network (one static program that waits, in an image the executor
// imports once: sandboxImageRef), and a job without published ports starts
// in the sandbox's network namespace (network mode container:<sandbox>),
// which costs Docker nothing to set up. A sandbox serves one job and is
// removed with it; after each such start the executor starts the next one
// of its kind in the background.
//
// Two kinds (boxKind): for plain jobs, with Docker's resolver as it is;
// for jobs with a subnet, with Docker's resolver forwarding to
// subnet.Resolver, the address every subnet's DNS answers at (search
// domain "internal" and the subnet's options, as a subnet job without a
// sandbox gets with its gateway): a job's resolver cannot be set in
// container:<sandbox> mode, so it is set when the sandbox is made, and the
// address is the same for every deployment. Such a job's subnet interface
// is attached to the sandbox's namespace (Subnet.AttachNetns, with the
// /32 route to subnet.Resolver that link.OpenTUN adds) before the job is
// created, so the job starts with dms0 up, which a job without a sandbox
// does not (its interface comes after its start).
//
// Nothing is relaxed: the job's traffic leaves through the sandbox's
// interface on the job network, so the block list and the isolation
// between containers (inter-container communication off) apply as before,
// and no two jobs share a sandbox. The sandbox itself runs with every
// capability dropped, no-new-privileges, a read-only root, 6 MiB, a
// pids limit and, once it runs, 0.01 CPU. What differs for the job: its hostname, /etc/hosts and
// /etc/resolv.conf are the sandbox's (the same resolver, 127.0.0.11).
//
// A sandbox carries labelSandbox and Config.Labels, not
// executor.LabelManaged: List and the re-attach never take it for a job.
// A job in one carries labelSandboxOf, its sandbox's ID, so Remove removes
// both, also after a restart. Sandboxes that no job of this node names
// (left by a process that did not Close) are removed before the first one
// is started. Close removes the ready ones.

const (
	// labelSandbox marks a sandbox container.
	labelSandbox = "dms.sandbox"
	// labelSandboxOf names, on a job's container, the sandbox whose
	// network namespace it uses.
	labelSandboxOf = "dms.sandbox.id"
	// sandboxRepo is the repository of the sandbox image.
	sandboxRepo = "dms/sandbox"
	// sandboxNanoCPUs is a running sandbox's CPU limit (0.01 CPU).
	sandboxNanoCPUs = 1e7
)

// boxKind is a kind of sandbox: what its resolver forwards to.
type boxKind int

const (
	plainBox  boxKind = iota // Docker's resolver as it is
	subnetBox                // Docker's resolver forwarding to subnet.Resolver
	nKinds
)

func (k boxKind) String() string {
	if k == subnetBox {
		return "subnet"
	}
	return "plain"
}

// pool is the executor's ready sandboxes.
type pool struct {
	mu      sync.Mutex
	ready   [nKinds][]string // guarded by mu: running sandboxes of each kind, no job in them yet
	warming [nKinds]bool     // guarded by mu: a sandbox of the kind is being started
	swept   bool             // guarded by mu: sandboxes left by an earlier process were removed
	image   string           // guarded by mu: the sandbox image's reference, once imported
}

// waitProgram returns a static Linux program for GOARCH arch that waits
// forever (pause on amd64, ppoll with no descriptors and no timeout on
// arm64), as a minimal ELF file; nil for other architectures. As PID 1 of
// its container it ignores SIGTERM; the executor removes it with SIGKILL.
func waitProgram(arch string) []byte {
	var machine uint16
	var code []byte
	switch arch {
	case "amd64":
		machine = 62 // EM_X86_64
		code = []byte{
			0xb8, 0x22, 0x00, 0x00, 0x00, // mov eax, 34 (pause)
			0x0f, 0x05, // syscall
			0xeb, 0xf7, // jmp back to mov
		}
	case "arm64":
		machine = 183 // EM_AARCH64
		for _, ins := range []uint32{
			0xd2800000, // mov x0, #0 (fds: NULL)
			0xd2800001, // mov x1, #0 (nfds: 0)
			0xd2800002, // mov x2, #0 (timeout: NULL, forever)
			0xd2800003, // mov x3, #0 (sigmask: NULL)
			0xd2800928, // mov x8, #73 (ppoll)
			0xd4000001, // svc #0
			0x17fffffa, // b back to the first mov
		} {
			code = binary.LittleEndian.AppendUint32(code, ins)
		}
	default:
		return nil
	}
	const base, ehsize, phsize = 0x400000, 64, 56
	size := uint64(ehsize + phsize + len(code))
	le := binary.LittleEndian
	b := make([]byte, 0, size)
	b = append(b, 0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* little endian */, 1 /* version */, 0 /* System V */)
	b = append(b, make([]byte, 8)...)
	b = le.AppendUint16(b, 2) // ET_EXEC
	b = le.AppendUint16(b, machine)
	b = le.AppendUint32(b, 1)                  // version
	b = le.AppendUint64(b, base+ehsize+phsize) // entry: the code, after the headers
	b = le.AppendUint64(b, ehsize)             // program headers' offset
	b = le.AppendUint64(b, 0)                  // no section headers
	b = le.AppendUint32(b, 0)                  // flags
	b = le.AppendUint16(b, ehsize)             // header size
	b = le.AppendUint16(b, phsize)             // program header size
	b = le.AppendUint16(b, 1)                  // one program header
	b = le.AppendUint16(b, 0)                  // section header size
	b = le.AppendUint16(b, 0)                  // no sections
	b = le.AppendUint16(b, 0)                  // no section names
	b = le.AppendUint32(b, 1)                  // PT_LOAD
	b = le.AppendUint32(b, 5)                  // R+X
	b = le.AppendUint64(b, 0)                  // from the file's start
	b = le.AppendUint64(b, base)               // virtual address
	b = le.AppendUint64(b, base)               // physical address
	b = le.AppendUint64(b, size)               // bytes in the file
	b = le.AppendUint64(b, size)               // bytes in memory
	b = le.AppendUint64(b, 0x1000)             // alignment
	return append(b, code...)
}

// sandboxTar returns the sandbox image's file system: /wait, the program
// for this machine; nil where there is none.
func sandboxTar(arch string) []byte {
	prog := waitProgram(arch)
	if prog == nil {
		return nil
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// A fixed header (no time stamps): the same bytes, the same image.
	if err := tw.WriteHeader(&tar.Header{Name: "wait", Mode: 0o555, Size: int64(len(prog)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return nil
	}
	if _, err := tw.Write(prog); err != nil {
		return nil
	}
	if err := tw.Close(); err != nil {
		return nil
	}
	return buf.Bytes()
}

// sandboxImageRef returns the sandbox image's reference for a file system:
// its content names it, so a changed program is a new image.
func sandboxImageRef(fs []byte) string {
	sum := sha256.Sum256(fs)
	return sandboxRepo + ":" + hex.EncodeToString(sum[:6])
}

// pooled reports whether a start with these options can use a sandbox,
// and of which kind: on the job network, without published ports (they
// belong to the namespace's creator) or a runtime of its own (a sandboxed
// runtime has its own network stack). A job with a subnet takes a
// subnetBox.
func (e *Executor) pooled(spec *executor.Spec, opts *client.ContainerCreateOptions) (boxKind, bool) {
	kind := plainBox
	if spec.Subnet != nil {
		kind = subnetBox
	}
	return kind, e.cfg.WarmSandboxes >= 0 && opts.HostConfig.NetworkMode == JobNetwork && len(spec.Ports) == 0 &&
		e.cfg.Runtime == "" && waitProgram(runtime.GOARCH) != nil
}

// claimSandbox takes a ready sandbox of the kind ("": none ready).
func (e *Executor) claimSandbox(kind boxKind) string {
	e.pool.mu.Lock()
	defer e.pool.mu.Unlock()
	ready := e.pool.ready[kind]
	n := len(ready)
	if n == 0 {
		return ""
	}
	id := ready[n-1]
	e.pool.ready[kind] = ready[:n-1]
	return id
}

// refill starts a sandbox of the kind in the background unless enough
// are ready or one is being started.
func (e *Executor) refill(kind boxKind) {
	want := max(e.cfg.WarmSandboxes, 1)
	e.pool.mu.Lock()
	if e.pool.warming[kind] || len(e.pool.ready[kind]) >= want {
		e.pool.mu.Unlock()
		return
	}
	e.pool.warming[kind] = true
	e.pool.mu.Unlock()
	e.mu.Lock()
	run := !e.closed
	if run {
		e.watchers.Add(1) // under mu: never after Close's Wait began
	}
	e.mu.Unlock()
	if !run {
		e.pool.mu.Lock()
		e.pool.warming[kind] = false
		e.pool.mu.Unlock()
		return
	}
	go func() {
		defer e.watchers.Done()
		ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
		defer cancel()
		id, err := e.startSandbox(ctx, kind)
		e.pool.mu.Lock()
		e.pool.warming[kind] = false
		if err == nil {
			e.pool.ready[kind] = append(e.pool.ready[kind], id)
		}
		e.pool.mu.Unlock()
		if err != nil {
			e.log.Debug("network sandbox not started", "kind", kind, "err", err)
		}
	}()
}

// startSandbox starts a sandbox of the kind on the job network and
// returns its ID.
func (e *Executor) startSandbox(ctx context.Context, kind boxKind) (string, error) {
	image, err := e.sandboxImage(ctx)
	if err != nil {
		return "", err
	}
	e.sweepSandboxes(ctx)
	l, err := e.jobNetwork(ctx)
	if err != nil {
		return "", err
	}
	defer l.unlock() // once the sandbox runs on the network
	labels := map[string]string{labelSandbox: "true"}
	for k, v := range e.cfg.Labels {
		labels[k] = v
	}
	pids := int64(4)
	hc := &container.HostConfig{
		NetworkMode:    JobNetwork,
		ReadonlyRootfs: true,
		SecurityOpt:    []string{"no-new-privileges"},
		CapDrop:        []string{"ALL"},
		// No CPU quota yet: runc sets the container up inside its
		// cgroup, and at 0.01 CPU that setup took seconds more than
		// the start itself (3.4 s against 2.0 s at load 18), so a
		// refill was not ready for the next start. The quota is set
		// once the program waits.
		Resources: container.Resources{Memory: 6 << 20, MemorySwap: 6 << 20, PidsLimit: &pids},
		LogConfig: container.LogConfig{Type: "none"},
	}
	if kind == subnetBox {
		subnetResolver(hc, subnet.Resolver)
	}
	name := "dms-sandbox-" + randomHex(6)
	created, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:       name,
		Config:     &container.Config{Image: image, Cmd: []string{"/wait"}, Labels: labels},
		HostConfig: hc,
	})
	if err != nil {
		// The daemon can finish a create the client gave up on (a
		// cancelled context: Close cancels a warm-up that way); by its
		// name, nothing is left behind.
		e.removeSandbox(name)
		return "", e.classify("create network sandbox", err)
	}
	if _, err := e.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		e.removeSandbox(created.ID)
		return "", e.classify("start network sandbox", err)
	}
	if _, err := e.cli.ContainerUpdate(ctx, created.ID, client.ContainerUpdateOptions{
		Resources: &container.Resources{NanoCPUs: sandboxNanoCPUs},
	}); err != nil {
		e.removeSandbox(created.ID)
		return "", e.classify("limit network sandbox", err)
	}
	return created.ID, nil
}

// sandboxImage returns the sandbox image's reference, importing the image
// when the daemon lacks it.
func (e *Executor) sandboxImage(ctx context.Context) (string, error) {
	e.pool.mu.Lock()
	ref := e.pool.image
	e.pool.mu.Unlock()
	if ref != "" {
		return ref, nil
	}
	fs := sandboxTar(runtime.GOARCH)
	ref = sandboxImageRef(fs)
	if _, err := e.cli.ImageInspect(ctx, ref); cerrdefs.IsNotFound(err) {
		resp, err := e.cli.ImageImport(ctx, client.ImageImportSource{Source: bytes.NewReader(fs), SourceName: "-"}, ref,
			client.ImageImportOptions{Changes: []string{`CMD ["/wait"]`, "LABEL " + labelSandbox + "=true"}})
		if err != nil {
			return "", e.classify("import the network sandbox image", err)
		}
		_, err = io.Copy(io.Discard, resp)
		resp.Close()
		if err != nil {
			return "", e.classify("import the network sandbox image", err)
		}
	} else if err != nil {
		return "", e.classify("inspect the network sandbox image", err)
	}
	e.pool.mu.Lock()
	e.pool.image = ref
	e.pool.mu.Unlock()
	return ref, nil
}

// sweepSandboxes removes, once, the sandboxes of this node that neither
// this executor holds nor a job container names: left by a process that
// did not Close, or by a job removed without the executor.
func (e *Executor) sweepSandboxes(ctx context.Context) {
	e.pool.mu.Lock()
	if e.pool.swept {
		e.pool.mu.Unlock()
		return
	}
	e.pool.swept = true
	e.pool.mu.Unlock()
	f := client.Filters{}
	f.Add("label", labelSandbox+"=true")
	for k, v := range e.cfg.Labels {
		f.Add("label", k+"="+v)
	}
	boxes, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil || len(boxes.Items) == 0 {
		return
	}
	jf := client.Filters{}
	jf.Add("label", executor.LabelManaged+"=true")
	jf.Add("label", labelSandboxOf)
	for k, v := range e.cfg.Labels {
		jf.Add("label", k+"="+v)
	}
	jobs, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: jf})
	if err != nil {
		return
	}
	named := map[string]bool{}
	for _, j := range jobs.Items {
		named[j.Labels[labelSandboxOf]] = true
	}
	e.pool.mu.Lock()
	for _, ready := range e.pool.ready {
		for _, id := range ready {
			named[id] = true
		}
	}
	e.pool.mu.Unlock()
	for _, b := range boxes.Items {
		if !named[b.ID] {
			e.removeSandbox(b.ID)
		}
	}
}

// removeSandbox removes a sandbox of this node (SIGKILL: its program
// ignores SIGTERM); a container that is not one is left alone, whatever a
// label named it.
func (e *Executor) removeSandbox(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := e.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil || info.Container.Config == nil || !e.isSandbox(info.Container.Config.Labels) {
		return
	}
	if _, err := e.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		e.log.Warn("remove network sandbox", "container", id[:min(12, len(id))], "err", err)
	}
}

// isSandbox reports whether a container's labels make it one of this
// node's sandboxes.
func (e *Executor) isSandbox(labels map[string]string) bool {
	if labels[labelSandbox] != "true" || labels[executor.LabelManaged] != "" {
		return false
	}
	for k, v := range e.cfg.Labels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// closePool removes the ready sandboxes (Close).
func (e *Executor) closePool() {
	e.pool.mu.Lock()
	ready := e.pool.ready
	e.pool.ready = [nKinds][]string{}
	e.pool.mu.Unlock()
	for _, ids := range ready {
		for _, id := range ids {
			e.removeSandbox(id)
		}
	}
}

// sandboxRunning reports whether a sandbox still runs (a job cannot join
// the namespace of one that does not).
func (e *Executor) sandboxRunning(ctx context.Context, id string) bool {
	info, err := e.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	return err == nil && info.Container.State != nil && info.Container.State.Running
}
