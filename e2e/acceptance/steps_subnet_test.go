package acceptance

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cucumber/godog"
	"golang.org/x/sys/unix"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/e2e/featureenv"
	"github.com/dmsnet/dms/internal/e2etest"
	"github.com/dmsnet/dms/internal/poll"
)

// Steps of ip_over_libp2p.feature: deployments with a subnet, their
// docker allocations on providers in different regions of the feature
// environment (featureenv.Config.Docker: each node runs its workloads on
// this machine's Docker engine). Commands run in an allocation with `dms
// deployment exec` from the operator, as a user would; the allocation's
// address is what its interface dms0 says. Ensembles name <busybox>, a
// one-binary image of Debian's static busybox (nc, httpd, wget,
// nslookup), and <free-port>, a TCP port free on this machine.

// subnetRun is what the scenario did with its subnets.
type subnetRun struct {
	last    featureenv.Result // of the last command run in an allocation
	lastCmd string
	port    int               // the <free-port> of the last ensemble
	answer  string            // a remembered answer (redeploy)
	drops   map[string]uint64 // the providers' drops by reason before the injection
	rx      uint64            // the packets the destination's interface had received before
}

func subnetRunOf(w *World) *subnetRun {
	return scenarioValue(w, "subnet.run", func(testing.TB) *subnetRun { return &subnetRun{} })
}

// deploymentNamed returns the scenario's deployment: the last, or the
// first or second.
func deploymentNamed(w *World, which string) string {
	run := envRunOf(w)
	switch which {
	case "first", "second":
		i := map[string]int{"first": 0, "second": 1}[which]
		if len(run.deployments) <= i {
			w.T.Fatalf("the scenario has %d deployments, no %s one", len(run.deployments), which)
		}
		return run.deployments[i]
	}
	return run.last(w)
}

// freePort returns a TCP port no one listens on here.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// allocExec runs a shell script in an allocation of a deployment, with
// dms deployment exec from the operator.
func allocExec(ctx context.Context, w *World, dep, alloc, script string) (featureenv.Result, error) {
	ctx, cancel := stepCtx(ctx, 30*time.Second)
	defer cancel()
	return envOf(w).Operator().Exec(ctx, "deployment", "exec", dep, alloc, "--", "sh", "-c", script)
}

var inetLine = regexp.MustCompile(`inet (\d+\.\d+\.\d+\.\d+/\d+)`)

// subnetAddr returns an allocation's address on its subnet, with the
// block's length, as its interface shows it.
func subnetAddr(ctx context.Context, w *World, dep, alloc string) (netip.Prefix, error) {
	r, err := allocExec(ctx, w, dep, alloc, "ip -4 -o addr show dms0")
	if err != nil {
		return netip.Prefix{}, err
	}
	m := inetLine.FindStringSubmatch(r.Stdout)
	if r.Code != 0 || m == nil {
		return netip.Prefix{}, fmt.Errorf("%s has no address on dms0: %s", alloc, r)
	}
	return netip.ParsePrefix(m[1])
}

// peerOf is <peer of NODE> in an ensemble: the peer ID of the
// environment's node NODE (eu-1).
var peerOf = regexp.MustCompile(`<peer of ([a-z0-9-]+)>`)

var addrOf = regexp.MustCompile(`<address of ([a-z0-9-]+)(?: of the (first|second) deployment)?>`)

// expandAddrs replaces <address of NAME> (in the same deployment, or of
// the first or second) with NAME's subnet address.
func expandAddrs(ctx context.Context, w *World, dep, s string) (string, error) {
	var err error
	out := addrOf.ReplaceAllStringFunc(s, func(m string) string {
		g := addrOf.FindStringSubmatch(m)
		d := dep
		if g[2] != "" {
			d = deploymentNamed(w, g[2])
		}
		p, e := subnetAddr(ctx, w, d, g[1])
		if e != nil {
			err = e
		}
		return p.Addr().String()
	})
	return out, err
}

// nodeStatus returns a node's /public/status.
func nodeStatus(ctx context.Context, n *featureenv.Node) (api.Status, error) {
	var s api.Status
	out, err := n.Output(ctx, "invoke", api.BehaviorStatus, "--to", n.PeerID)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return s, fmt.Errorf("%s: status: %w: %s", n.Name, err, out)
	}
	return s, nil
}

// providers returns the environment's nodes but the operator.
func providers(w *World) []*featureenv.Node { return envOf(w).Nodes()[1:] }

// drops sums the providers' packets dropped, by reason.
func drops(ctx context.Context, w *World) (map[string]uint64, error) {
	sum := map[string]uint64{}
	for _, n := range providers(w) {
		if n.State() != featureenv.Running {
			continue
		}
		s, err := nodeStatus(ctx, n)
		if err != nil {
			return nil, err
		}
		if s.Subnet == nil {
			return nil, fmt.Errorf("%s runs no subnets (its status has none)", n.Name)
		}
		for k, v := range s.Subnet.Dropped {
			sum[k] += v
		}
	}
	return sum, nil
}

// container returns the ID and PID of an allocation's container on this
// machine's engine.
func container(ctx context.Context, dep, alloc string) (id string, pid int, err error) {
	out, err := exec.CommandContext(ctx, "docker", "ps", "--filter", "label=dms.deployment="+dep,
		"--format", `{{.ID}} {{.Label "dms.allocation"}}`).Output()
	if err != nil {
		return "", 0, fmt.Errorf("docker ps: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && strings.HasSuffix(f[1], "."+alloc) {
			id = f[0]
		}
	}
	if id == "" {
		return "", 0, fmt.Errorf("no running container of %s in deployment %s", alloc, dep)
	}
	p, err := exec.CommandContext(ctx, "docker", "inspect", "-f", "{{.State.Pid}}", id).Output()
	if err != nil {
		return "", 0, fmt.Errorf("docker inspect %s: %w", id, err)
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(p)))
	return id, pid, err
}

// udpPacket builds an IPv4/UDP packet (the kernel fills in the header's
// checksum; UDP's is left out, as IPv4 allows).
func udpPacket(src, dst netip.Addr, port uint16, payload []byte) []byte {
	p := make([]byte, 28+len(payload))
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	s, d := src.As4(), dst.As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[20:], 40000)
	binary.BigEndian.PutUint16(p[22:], port)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	copy(p[28:], payload)
	return p
}

// inject writes packets, as they are, out of the interface dms0 in the
// network namespace of process pid: what a workload with a raw socket
// could send.
func inject(pid int, dst netip.Addr, pkts ...[]byte) error {
	done := make(chan error, 1)
	go func() {
		// The thread enters another namespace and is never unlocked:
		// the runtime ends it with the goroutine.
		runtime.LockOSThread()
		done <- func() error {
			ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
			if err != nil {
				return err
			}
			defer ns.Close()
			if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("setns: %w", err)
			}
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
			if err != nil {
				return fmt.Errorf("raw socket: %w", err)
			}
			defer unix.Close(fd)
			if err := unix.BindToDevice(fd, "dms0"); err != nil {
				return fmt.Errorf("bind to dms0: %w", err)
			}
			to := &unix.SockaddrInet4{Addr: dst.As4()}
			for _, p := range pkts {
				if err := unix.Sendto(fd, p, 0, to); err != nil {
					return fmt.Errorf("send: %w", err)
				}
			}
			return nil
		}()
	}()
	return <-done
}

// ipLinks lists the interfaces and routes in the network namespace of pid
// (0: this process's).
func ipLinks(ctx context.Context, pid int) (string, error) {
	args := []string{"sh", "-c", "ip -o link; ip -4 route"}
	if pid != 0 {
		args = append([]string{"nsenter", "-t", strconv.Itoa(pid), "-n"}, args...)
	}
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func subnetSteps(sc *godog.ScenarioContext) {
	sc.Step(`^a feature environment of (\d+) nodes in the regions ([a-z0-9:, -]+) with (\d+) ms between regions, whose nodes run docker containers$`, func(ctx context.Context, nodes int, regions string, ms int) error {
		w := worldOf(ctx)
		e2etest.BusyboxImage(w.T) // skips without Docker or a static busybox
		return startEnv(ctx, w, nodes, regions, ms, true)
	})

	sc.Step(`^the operator has deployed the ensemble:$`, func(ctx context.Context, doc *godog.DocString) error {
		w := worldOf(ctx)
		yaml := strings.ReplaceAll(doc.Content, "<busybox>", e2etest.BusyboxImage(w.T))
		yaml = peerOf.ReplaceAllStringFunc(yaml, func(m string) string { return nodeNamed(w, peerOf.FindStringSubmatch(m)[1]).PeerID })
		if strings.Contains(yaml, "<free-port>") {
			port, err := freePort()
			if err != nil {
				return err
			}
			subnetRunOf(w).port = port
			yaml = strings.ReplaceAll(yaml, "<free-port>", strconv.Itoa(port))
		}
		dctx, cancel := stepCtx(ctx, time.Minute)
		defer cancel()
		id, err := deployFromOperator(dctx, w, yaml)
		if err != nil {
			return err
		}
		_, err = waitDeployment(ctx, w, id, 60, "running with every allocation running", func(d api.Deployment) bool {
			if d.State != "running" || len(d.Allocations) == 0 {
				return false
			}
			for _, a := range d.Allocations {
				if a.State != "running" && a.State != "healthy" {
					return false
				}
			}
			return true
		})
		return err
	})

	run := func(ctx context.Context, w *World, alloc, which, cmd string) error {
		dep := deploymentNamed(w, which)
		cmd, err := expandAddrs(ctx, w, dep, cmd)
		if err != nil {
			return err
		}
		r, err := allocExec(ctx, w, dep, alloc, cmd)
		if err != nil {
			return err
		}
		s := subnetRunOf(w)
		s.last, s.lastCmd = r, alloc+": "+cmd
		return nil
	}
	sc.Step("^\"([a-z0-9-]+)\"(?: of the (first|second) deployment)? runs `(.+)`$", func(ctx context.Context, alloc, which, cmd string) error {
		return run(ctx, worldOf(ctx), alloc, which, cmd)
	})
	sc.Step("^within (\\d+) seconds \"([a-z0-9-]+)\" runs `(.+)`, and its output contains \"([^\"]*)\"$", func(ctx context.Context, secs int, alloc, cmd, want string) error {
		w := worldOf(ctx)
		s := subnetRunOf(w)
		start := time.Now()
		err := poll.Until(ctx, time.Duration(secs)*time.Second, "an output with "+want, func(ctx context.Context) (bool, error) {
			if err := run(ctx, w, alloc, "", cmd); err != nil {
				return false, err
			}
			return s.last.Code == 0 && strings.Contains(s.last.Stdout, want), nil
		})
		if err != nil {
			return fmt.Errorf("%w: last %s", err, s.last)
		}
		envLogf(w.T, "%s answered after %s", s.lastCmd, time.Since(start).Round(100*time.Millisecond))
		return nil
	})
	sc.Step(`^the provider running "([^"]+)" is killed and started again$`, func(ctx context.Context, alloc string) error {
		w := worldOf(ctx)
		env := envOf(w)
		ctx, cancel := stepCtx(ctx, 2*time.Minute)
		defer cancel()
		n, err := nodeRunning(ctx, w, alloc)
		if err != nil {
			return err
		}
		start := time.Now()
		if err := env.Kill(ctx, n); err != nil {
			return err
		}
		if err := env.Restart(ctx, n); err != nil {
			return err
		}
		if err := env.Mesh(ctx); err != nil {
			return err
		}
		envLogf(w.T, "%s, which runs %s, killed and back in %s", n.Name, alloc, time.Since(start).Round(100*time.Millisecond))
		return nil
	})
	sc.Step(`^its output contains "([^"]*)"$`, func(ctx context.Context, want string) error {
		s := subnetRunOf(worldOf(ctx))
		if s.last.Code != 0 || !strings.Contains(s.last.Stdout, want) {
			return fmt.Errorf("%s: want success with %q in the output, got %s", s.lastCmd, want, s.last)
		}
		return nil
	})
	sc.Step(`^it fails$`, func(ctx context.Context) error {
		s := subnetRunOf(worldOf(ctx))
		if s.last.Code == 0 {
			return fmt.Errorf("%s: succeeded, want a failure: %s", s.lastCmd, s.last)
		}
		envLogf(worldOf(ctx).T, "%s: %s", s.lastCmd, s.last)
		return nil
	})
	sc.Step("^within (\\d+) seconds \"([a-z0-9-]+)\" runs `(.+)` with an output (other than|the same as) the last$", func(ctx context.Context, secs int, alloc, cmd, how string) error {
		w := worldOf(ctx)
		s := subnetRunOf(w)
		before := strings.TrimSpace(s.last.Stdout)
		if s.last.Code != 0 || before == "" {
			return fmt.Errorf("no earlier answer to compare with: %s", s.last)
		}
		err := poll.Until(ctx, time.Duration(secs)*time.Second, "an answer "+how+" "+before, func(ctx context.Context) (bool, error) {
			if err := run(ctx, w, alloc, "", cmd); err != nil {
				return false, err
			}
			now := strings.TrimSpace(s.last.Stdout)
			return s.last.Code == 0 && now != "" && (now != before) == (how == "other than"), nil
		})
		if err != nil {
			return fmt.Errorf("%w: last %s", err, s.last)
		}
		envLogf(w.T, "%s: %q, before %q", s.lastCmd, strings.TrimSpace(s.last.Stdout), before)
		return nil
	})

	sc.Step(`^"([a-z0-9-]+)" resolves "([^"]+)"$`, func(ctx context.Context, alloc, name string) error {
		return run(ctx, worldOf(ctx), alloc, "", "nslookup "+name)
	})
	sc.Step(`^it gets the subnet address of "([a-z0-9-]+)"$`, func(ctx context.Context, alloc string) error {
		w := worldOf(ctx)
		s := subnetRunOf(w)
		want, err := subnetAddr(ctx, w, deploymentNamed(w, ""), alloc)
		if err != nil {
			return err
		}
		// busybox: "Name: db.internal" then "Address: 10.77.0.3".
		_, after, ok := strings.Cut(s.last.Stdout, "Name:")
		if s.last.Code != 0 || !ok {
			return fmt.Errorf("%s: no answer: %s", s.lastCmd, s.last)
		}
		if !strings.Contains(after, "Address: "+want.Addr().String()) {
			return fmt.Errorf("%s: want the address %s: %s", s.lastCmd, want.Addr(), s.last)
		}
		return nil
	})

	sc.Step(`^the operator shuts the deployment down$`, func(ctx context.Context) error {
		w := worldOf(ctx)
		dep := deploymentNamed(w, "")
		// What to look for once it is gone: its block.
		p, err := subnetAddr(ctx, w, dep, subnetAllocs(w)[0])
		if err != nil {
			return err
		}
		w.vals["subnet-block"] = p.Masked()
		sctx, cancel := stepCtx(ctx, time.Minute)
		defer cancel()
		if err := envOf(w).Operator().Run(sctx, "deployment", "shutdown", dep); err != nil {
			return err
		}
		_, err = waitDeployment(ctx, w, dep, 60, "ended", func(d api.Deployment) bool { return d.Terminal() })
		return err
	})
	sc.Step(`^within (\d+) seconds no provider keeps a container, a TUN interface, a route or a routing table of it$`, func(ctx context.Context, secs int) error {
		w := worldOf(ctx)
		dep := deploymentNamed(w, "")
		block, _ := w.vals["subnet-block"].(netip.Prefix)
		var problem string
		err := poll.Until(ctx, time.Duration(secs)*time.Second, "the subnet gone", func(ctx context.Context) (bool, error) {
			problem = ""
			out, err := exec.CommandContext(ctx, "docker", "ps", "-a", "-q", "--filter", "label=dms.deployment="+dep).Output()
			if err != nil {
				return false, err
			}
			if ids := strings.Fields(string(out)); len(ids) > 0 {
				problem = fmt.Sprintf("containers of the deployment remain: %v", ids)
				return false, nil
			}
			pids := map[string]int{"this machine": 0}
			for _, n := range providers(w) {
				_, pid, err := nodeContainer(ctx, n)
				if err != nil {
					return false, err
				}
				pids[n.Name] = pid
				s, err := nodeStatus(ctx, n)
				if err != nil {
					return false, err
				}
				if s.Subnet == nil || s.Subnet.Deployments != 0 || s.Subnet.Attached != 0 {
					problem = fmt.Sprintf("%s still has routing tables or interfaces: %+v", n.Name, s.Subnet)
					return false, nil
				}
			}
			for where, pid := range pids {
				links, err := ipLinks(ctx, pid)
				if err != nil {
					return false, err
				}
				if strings.Contains(links, "dms0") || (block.IsValid() && strings.Contains(links, block.Masked().Addr().String())) {
					problem = fmt.Sprintf("%s keeps an interface or a route of the subnet %s:\n%s", where, block, links)
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("%w: %s", err, problem)
		}
		return nil
	})

	sc.Step(`^a program on the provider's host connects to the published port$`, func(ctx context.Context) error {
		w := worldOf(ctx)
		s := subnetRunOf(w)
		if s.port == 0 {
			return errors.New("the ensemble published no <free-port>")
		}
		// The providers run their containers on this machine's engine:
		// their host is this machine.
		var body string
		err := poll.Until(ctx, 20*time.Second, "an answer on the published port", func(ctx context.Context) (bool, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", s.port), nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				body = err.Error()
				return false, nil
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			return resp.StatusCode == http.StatusOK, nil
		})
		s.last = featureenv.Result{Stdout: body}
		if err != nil {
			s.last.Code = 1
		}
		s.lastCmd = fmt.Sprintf("GET http://127.0.0.1:%d/", s.port)
		return nil
	})

	sc.Step(`^a (packet with a spoofed source|genuine packet) is written into "([a-z0-9-]+)"'s interface(?: of the (first|second) deployment)?, to "([a-z0-9-]+)"(?: of the (first|second) deployment)?$`, func(ctx context.Context, kind, from, fromDep, to, toDep string) error {
		w := worldOf(ctx)
		s := subnetRunOf(w)
		dep, dstDep := deploymentNamed(w, fromDep), deploymentNamed(w, toDep)
		src, err := subnetAddr(ctx, w, dep, from)
		if err != nil {
			return err
		}
		dst, err := subnetAddr(ctx, w, dstDep, to)
		if err != nil {
			return err
		}
		if s.drops, err = drops(ctx, w); err != nil {
			return err
		}
		if s.rx, err = rxPackets(ctx, w, dstDep, to); err != nil {
			return err
		}
		from4 := src.Addr()
		if kind != "genuine packet" {
			// The last host address of the block: no allocation's.
			b := src.Masked().Addr().As4()
			binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])|(1<<(32-src.Bits())-2))
			from4 = netip.AddrFrom4(b)
		}
		_, pid, err := container(ctx, dep, from)
		if err != nil {
			return err
		}
		envLogf(w.T, "writing into %s's dms0 (pid %d): %s → %s", from, pid, from4, dst.Addr())
		return inject(pid, dst.Addr(), udpPacket(from4, dst.Addr(), 9000, []byte(kind+"\n")))
	})
	sc.Step(`^within (\d+) seconds the providers count a packet dropped as "([a-z-]+)"$`, func(ctx context.Context, secs int, reason string) error {
		w := worldOf(ctx)
		s := subnetRunOf(w)
		var now map[string]uint64
		err := poll.Until(ctx, time.Duration(secs)*time.Second, "a drop counted as "+reason, func(ctx context.Context) (bool, error) {
			var err error
			now, err = drops(ctx, w)
			return err == nil && now[reason] > s.drops[reason], err
		})
		if err != nil {
			return fmt.Errorf("%w: drops %v before, %v now", err, s.drops, now)
		}
		envLogf(w.T, "drops: %v before, %v now", s.drops, now)
		return nil
	})
	sc.Step(`^"([a-z0-9-]+)"'s interface(?: of the (first|second) deployment)? has received no packet$`, func(ctx context.Context, alloc, which string) error {
		w := worldOf(ctx)
		s := subnetRunOf(w)
		n, err := rxPackets(ctx, w, deploymentNamed(w, which), alloc)
		if err != nil {
			return err
		}
		if n != s.rx {
			return fmt.Errorf("%s's dms0 received %d packets, %d before", alloc, n, s.rx)
		}
		return nil
	})
	sc.Step(`^within (\d+) seconds "([a-z0-9-]+)"'s interface has received a packet$`, func(ctx context.Context, secs int, alloc string) error {
		w := worldOf(ctx)
		s := subnetRunOf(w)
		var n uint64
		err := poll.Until(ctx, time.Duration(secs)*time.Second, "a packet received", func(ctx context.Context) (bool, error) {
			var err error
			n, err = rxPackets(ctx, w, deploymentNamed(w, ""), alloc)
			return err == nil && n > s.rx, err
		})
		if err != nil {
			return fmt.Errorf("%w: %s's dms0 received %d packets, %d before", err, alloc, n, s.rx)
		}
		return nil
	})
}

// rxPackets returns how many packets an allocation's dms0 has received.
func rxPackets(ctx context.Context, w *World, dep, alloc string) (uint64, error) {
	r, err := allocExec(ctx, w, dep, alloc, "cat /sys/class/net/dms0/statistics/rx_packets")
	if err != nil {
		return 0, err
	}
	n, perr := strconv.ParseUint(strings.TrimSpace(r.Stdout), 10, 64)
	if r.Code != 0 || perr != nil {
		return 0, fmt.Errorf("%s: the packets dms0 received: %s", alloc, r)
	}
	return n, nil
}

// subnetAllocs lists the allocations of the scenario's last deployment.
func subnetAllocs(w *World) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := status(ctx, w, deploymentNamed(w, ""))
	if err != nil || len(d.Allocations) == 0 {
		w.T.Fatalf("the deployment's allocations: %v", err)
	}
	var out []string
	for _, a := range d.Allocations {
		out = append(out, a.Name)
	}
	return out
}

// nodeContainer returns a node's container ID and the PID of its dms.
func nodeContainer(ctx context.Context, n *featureenv.Node) (string, int, error) {
	p, err := exec.CommandContext(ctx, "docker", "inspect", "-f", "{{.State.Pid}}", n.Container()).Output()
	if err != nil {
		return "", 0, fmt.Errorf("docker inspect %s: %w", n.Container(), err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(p)))
	return n.Container(), pid, err
}
