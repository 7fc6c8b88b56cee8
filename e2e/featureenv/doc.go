// Package featureenv runs a network of real dms nodes, each in its own
// Docker container, grouped in regions with latency and loss between
// regions, and lets a test kill, pause, disconnect and reconnect nodes and
// partition and heal regions. The multi-node acceptance scenarios
// (e2e/acceptance/features/network_environment.feature) run on it; see
// docs/feature-environment.md.
//
// # Usage
//
//	env, err := featureenv.Start(ctx, featureenv.Config{
//		Regions:            map[string]int{"eu": 2, "us": 2, "ap": 1},
//		InterRegionLatency: 50 * time.Millisecond,
//	})
//	if errors.Is(err, featureenv.ErrUnsupported) {
//		t.Skip(err) // no Docker engine, not root, no iptables or nsenter
//	}
//	defer env.Close()
//	eu1, us1 := env.Node("eu-1"), env.Node("us-1")
//	rtt, err := eu1.Ping(ctx, us1)                 // ≈ 50 ms
//	r, err := eu1.Exec(ctx, "peers", "list")       // docker exec … dms --home /home/dms peers list
//	env.Partition("eu", "us"); env.Heal("eu", "us")
//	env.Disconnect(us1); env.Reconnect(us1)
//	env.Pause(ctx, us1); env.Unpause(ctx, us1)
//	env.Kill(ctx, us1); env.Restart(ctx, us1)
//
// Start returns when every node's API answers, every node is connected to
// every other, and every node trusts the operator (Operator, the first
// node by region name: ap-1 above) for /dms. Nodes are named
// <region>-<k>; each runs `dms run` in a container of the run's bridge
// network with its home bind-mounted from this machine (Node.Home,
// /home/dms in the container), libp2p on TCP port 4001 of its address,
// mDNS off, the wasm executor only, location.region set to its region
// and orchestrator.lost_after 4s (Config.Settings adds or overrides
// keys). The REST API stays on the container's loopback: a test's
// commands run with docker exec (Node.Exec, Run, Output, JSON), and the
// environment brings the nodes up with the steps of internal/devnet
// (Init, Configure, WaitReady, Mesh, TrustOperator), reaching each API
// from its container's network namespace.
//
// # The image
//
// The node image holds one file, a statically linked dms (CGO_ENABLED=0),
// imported with `docker import` (no registry, no Dockerfile): Config.Binary,
// else $DMS_FEATUREENV_BIN, else one built from this checkout. It is tagged
// dms-featureenv:<first 16 hex digits of the binary's SHA-256> and imported
// again only when the binary changes; older tags no container uses are
// removed.
//
// # Docker workloads and subnets
//
// With Config.Docker every node also runs the docker executor, on this
// machine's Docker engine (its socket bind-mounted): the workloads are
// siblings of the nodes' containers, labelled dms.node with their node's
// peer ID, and removed by Close. Each node's container then shares the
// host's PID namespace and has /dev/net/tun, CAP_NET_ADMIN, CAP_SYS_ADMIN,
// CAP_SYS_PTRACE and a writable /proc/sys, so that it can put its
// workloads on their deployments' subnets (a TUN in each workload's
// network namespace); a published port is published on this machine
// (e2e/acceptance/features/ip_over_libp2p.feature).
//
// # Regions, latency, loss, partitions
//
// Every node is on one Docker network; a region is the set of nodes named
// after it. This kernel has no netem (CONFIG_NET_SCH_NETEM is off, as are
// the prio qdisc and the gact action), so the environment shapes traffic
// in user space: in each node's network namespace, an iptables rule sends
// every IPv4 packet arriving from the network's subnet to a netfilter
// queue (NFQUEUE) that this process reads over netlink. For each packet it
// decides: pass at once (same region), hold for half of
// InterRegionLatency and pass (another region, so a round trip sees all
// of it), or drop (Loss, a partition, a disconnected node). Partitions,
// heals, disconnects and SetLink take effect on the next packet. Packets
// are held on their way in, not out, so that they no longer count
// against the sending socket's TCP Small Queues budget (which would add
// half a round trip to back-to-back writes). Each queue is read on a
// thread of its own at nice -15, which waits in the kernel (ppoll) until
// a packet arrives or a held one is due, and a packet is held from its
// arrival (the kernel's timestamp), not from when it was read: on a
// loaded machine the delays stay those asked for. A packet the queue
// cannot take (its reader behind, or 8192 held) passes unshaped rather
// than being dropped (the queue fails open); Env.QueueReport counts such
// packets and the late ones. The containers need no
// capabilities and no tools: this process enters their namespaces
// (setns, nsenter) as root.
//
// The shaping lives in the process that called Start: if it dies, the
// queues close and the kernel drops what they would have received, so the
// nodes cannot talk until the environment is closed or removed.
//
// # Concurrency and cleanup
//
// One environment runs on a machine at a time: Start takes an exclusive
// lock (a flock on /tmp/dms-featureenv.lock, released by Close or by
// the process's death) and waits for it within its context. Holding the
// lock, it removes everything an earlier run left behind: containers and
// networks labelled dms.featureenv.run and $TMPDIR/dms-featureenv-<run>
// homes. The iptables rules and queues live in the containers' network
// namespaces and go with them. Close removes the run's containers, network
// and homes; a failed Start removes what it created. Env's methods may be
// called from several goroutines.
package featureenv

import "errors"

// ErrUnsupported is returned by Start when this machine cannot run the
// environment (no Docker engine, not root, a tool missing); the message
// says what is missing. Tests skip on it.
var ErrUnsupported = errors.New("feature environment unsupported here")
