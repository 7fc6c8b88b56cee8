// Command subnetpeer is one end of the subnet benchmark (bench/run-subnet.sh):
// run inside a network namespace, it is a provider with one allocation on
// the dms overlay. It starts a libp2p host listening on the namespace's
// veth address, a subnet router with a fixed two-route table (allocation
// "a" at 10.77.0.2 on peer a, "b" at 10.77.0.3 on peer b), and the TUN
// dms0 of its allocation, and runs until SIGINT or SIGTERM. The gateway
// 10.77.0.1 answers DNS (package subnet/dns): a.internal, b.internal.
//
// The two peers' keys derive from their names, so each knows the other's
// peer ID without an exchange; the table is signed with a key generated
// at start and opened as a provider would.
//
//	ip netns exec nsA subnetpeer -self a -local 10.99.0.1 -remote 10.99.0.2 [-quic] [-dgram]
//	ip netns exec nsB subnetpeer -self b -local 10.99.0.2 -remote 10.99.0.1 [-quic] [-dgram]
//
// -dgram gives the router a UDP socket (port 4002 on the veth address):
// the packets take the datagram path once its session is set up.
// -busypoll 500us turns on the socket reader's busy poll after an
// isolated send (router.Config.BusyPoll; off by default).
//
// It is a bench tool, not product code: no configuration, no persistence.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/subnet"
	"github.com/dmsnet/dms/internal/subnet/dns"
	"github.com/dmsnet/dms/internal/subnet/link"
	"github.com/dmsnet/dms/internal/subnet/router"
)

const (
	deployment = "subnet-bench"
	port       = 4001
	dgramPort  = 4002
)

var (
	block = netip.MustParsePrefix("10.77.0.0/24")
	addrs = map[string]netip.Addr{"a": netip.MustParseAddr("10.77.0.2"), "b": netip.MustParseAddr("10.77.0.3")}
)

func main() {
	self := flag.String("self", "", "this peer: a or b")
	local := flag.String("local", "", "this namespace's veth address, to listen on")
	remote := flag.String("remote", "", "the other namespace's veth address")
	useQUIC := flag.Bool("quic", false, "libp2p over QUIC instead of TCP")
	useDgram := flag.Bool("dgram", false, "the datagram path: a UDP socket on the veth address, port 4002")
	verbose := flag.Bool("v", false, "log the router's debug messages")
	busyPoll := flag.Duration("busypoll", 0, "the datagram socket's busy poll window after an isolated send (router.Config.BusyPoll), e.g. 500us; 0: off")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "subnetpeer: cpu profile:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*self, *local, *remote, *useQUIC, *useDgram, *verbose, *busyPoll); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "subnetpeer:", err)
		os.Exit(1)
	}
}

func run(self, local, remote string, useQUIC, useDgram, verbose bool, busyPoll time.Duration) error {
	other := map[string]string{"a": "b", "b": "a"}[self]
	if other == "" {
		return errors.New("-self must be a or b")
	}
	localIP, err := netip.ParseAddr(local)
	if err != nil {
		return fmt.Errorf("-local: %w", err)
	}
	remoteIP, err := netip.ParseAddr(remote)
	if err != nil {
		return fmt.Errorf("-remote: %w", err)
	}
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("peer", self)

	selfKey, selfID, err := peerKey(self)
	if err != nil {
		return err
	}
	_, otherID, err := peerKey(other)
	if err != nil {
		return err
	}
	h, err := libp2p.New(
		libp2p.Identity(selfKey),
		libp2p.ListenAddrs(multiaddr(localIP, useQUIC)),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		return fmt.Errorf("libp2p host: %w", err)
	}
	defer h.Close()
	h.Peerstore().AddAddr(otherID, multiaddr(remoteIP, useQUIC), peerstore.PermanentAddrTTL)

	table, err := signedTable(map[string]peer.ID{self: selfID, other: otherID})
	if err != nil {
		return err
	}
	// Forwarded names go to a resolver that is not there (SERVFAIL): the
	// namespace has no way out, and the bench needs only .internal.
	resolver, err := dns.New(dns.Config{Upstream: []string{"127.0.0.1:53"}, Timeout: 500 * time.Millisecond})
	if err != nil {
		return err
	}
	defer resolver.Close()
	cfg := router.Config{Host: h, Log: log, DNS: resolver, BusyPoll: busyPoll}
	if useDgram {
		if cfg.Datagram, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(localIP, dgramPort))); err != nil {
			return fmt.Errorf("datagram socket: %w", err)
		}
	}
	r, err := router.New(cfg)
	if err != nil {
		return err
	}
	defer r.Close()
	r.SetTable(table)
	dev, err := link.OpenTUN("/proc/self/ns/net", "dms0", netip.PrefixFrom(addrs[self], block.Bits()))
	if err != nil {
		return err
	}
	if err := r.Attach(deployment, self, dev); err != nil {
		dev.Close()
		return err
	}
	log.Info("up", "peer_id", selfID, "addr", addrs[self], "listen", h.Addrs(), "quic", useQUIC, "dgram", useDgram)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	st := r.Stats()
	log.Info("down", "forwarded", st.Forwarded, "datagrams", st.Datagrams, "delivered", st.Delivered, "sessions", st.Sessions, "fallbacks", st.Fallbacks, "read_errors", st.ReadErrors, "busy_polls", st.BusyPolls, "busy_answered", st.BusyAnswered, "dropped", st.Dropped)
	return nil
}

// peerKey derives a peer's libp2p key from its name.
func peerKey(name string) (crypto.PrivKey, peer.ID, error) {
	seed := sha256.Sum256([]byte("dms subnet bench peer " + name))
	k, err := identity.KeyFromSeed(seed[:])
	if err != nil {
		return nil, "", err
	}
	priv, err := crypto.UnmarshalEd25519PrivateKey(k.Private())
	if err != nil {
		return nil, "", err
	}
	id, err := peer.IDFromPrivateKey(priv)
	return priv, id, err
}

func multiaddr(ip netip.Addr, useQUIC bool) ma.Multiaddr {
	s := fmt.Sprintf("/ip4/%s/tcp/%d", ip, port)
	if useQUIC {
		s = fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", ip, port)
	}
	return ma.StringCast(s)
}

// signedTable is the bench's table, signed by a fresh orchestrator key
// and opened as a provider opens what it receives.
func signedTable(peers map[string]peer.ID) (*subnet.Table, error) {
	orchestrator, err := identity.NewKey()
	if err != nil {
		return nil, err
	}
	t := subnet.Table{Deployment: deployment, Version: uint64(time.Now().Unix()), Subnet: block}
	for _, alloc := range []string{"a", "b"} {
		t.Routes = append(t.Routes, subnet.Route{Allocation: alloc, Addr: addrs[alloc], Peer: peers[alloc].String()})
	}
	st, err := t.Sign(orchestrator)
	if err != nil {
		return nil, fmt.Errorf("sign the table: %w", err)
	}
	return st.Open(orchestrator.DID())
}
