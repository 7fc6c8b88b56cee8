//go:build linux

package router

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/dmsnet/dms/internal/subnet/dns"
	"github.com/dmsnet/dms/internal/subnet/link"
	"github.com/dmsnet/dms/internal/subnet/subnettest"
)

// The data path with real parts: a TUN in each of two network
// namespaces (package link), two libp2p hosts on loopback, one TCP flow
// from one namespace to the other through the routers.

// twoTUNs: allocation a (10.77.0.2) in namespace nsA on host A, b
// (10.77.0.3) in nsB on host B, each on a real TUN.
func twoTUNs(t *testing.T) (A, B *node, nsA, nsB string) {
	A, B = newNode(t, nil), newNode(t, nil)
	connect(t, A, B)
	tb := table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()})
	A.r.SetTable(tb)
	B.r.SetTable(tb)
	nsA, nsB = subnettest.NewNetns(t), subnettest.NewNetns(t)
	for _, x := range []struct {
		n     *node
		ns    string
		alloc string
		addr  string
	}{{A, nsA, "a", "10.77.0.2/24"}, {B, nsB, "b", "10.77.0.3/24"}} {
		dev, err := link.OpenTUN(x.ns, "dms0", netipPrefix(x.addr))
		if err != nil {
			t.Fatal(err)
		}
		if err := x.n.r.Attach("dep", x.alloc, dev); err != nil {
			_ = dev.Close()
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { A.r.Remove("dep"); B.r.Remove("dep") })
	return A, B, nsA, nsB
}

// TestPingThroughTUNs pings b from a's namespace (ping(8) in the
// namespace) and logs the round trips; the packets cross the routers.
func TestPingThroughTUNs(t *testing.T) {
	subnettest.RequireRoot(t)
	if _, err := exec.LookPath("ping"); err != nil {
		t.Skip("no ping")
	}
	_, _, nsA, _ := twoTUNs(t)
	out, err := exec.Command("ip", "netns", "exec", filepath.Base(nsA), "ping", "-n", "-q", "-c", "200", "-i", "0.002", "-W", "5", "10.77.0.3").CombinedOutput()
	if err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), " 0% packet loss") {
		t.Errorf("ping lost packets:\n%s", out)
	}
	t.Logf("%s", out)
}

// TestTCPThroughTUNs sends 32 MiB over TCP from a container-like
// namespace on host A to one on host B, through real TUNs and the
// routers, and checks every byte.
func TestTCPThroughTUNs(t *testing.T) {
	subnettest.RequireRoot(t)
	A, B, nsA, nsB := twoTUNs(t)

	var ln net.Listener
	subnettest.InNetns(t, nsB, func() (err error) {
		ln, err = net.Listen("tcp4", "10.77.0.3:5001")
		return err
	})
	defer ln.Close()
	var conn net.Conn
	subnettest.InNetns(t, nsA, func() (err error) {
		conn, err = net.DialTimeout("tcp4", "10.77.0.3:5001", 10*time.Second)
		return err
	})
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const size = 32 << 20
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	sent, got := sha256.New(), sha256.New()
	start := time.Now()
	go func() {
		defer conn.Close()
		for n := 0; n < size; n += len(data) {
			sent.Write(data)
			if _, err := conn.Write(data); err != nil {
				return
			}
		}
	}()
	_ = srv.SetReadDeadline(time.Now().Add(2 * time.Minute))
	n, err := io.Copy(got, srv)
	elapsed := time.Since(start)
	if err != nil || n != size {
		t.Fatalf("received %d of %d bytes: %v (stats A %v, B %v)", n, size, err, A.r.Stats(), B.r.Stats())
	}
	if !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
		t.Fatal("the bytes received differ from those sent")
	}
	t.Logf("%d MiB in %s: %.0f Mbit/s; A %+v; B %+v", size>>20, elapsed.Round(time.Millisecond),
		float64(size)*8/elapsed.Seconds()/1e6, A.r.Stats(), B.r.Stats())
}

// TestDNSOverTCPThroughTUN asks the gateway over TCP from a namespace's
// kernel (its TCP against the gateway's stateless responder, package
// subnet/dns): the answer, then the gateway's close.
func TestDNSOverTCPThroughTUN(t *testing.T) {
	subnettest.RequireRoot(t)
	srv, err := dns.New(dns.Config{Upstream: []string{"127.0.0.1:1"}, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	A, B := newNode(t, srv), newNode(t, nil)
	A.r.SetTable(table(t, "dep", 1, block, at{"a", 2, A.h.ID()}, at{"b", 3, B.h.ID()}))
	ns := subnettest.NewNetns(t)
	dev, err := link.OpenTUN(ns, "dms0", netipPrefix("10.77.0.2/24"))
	if err != nil {
		t.Fatal(err)
	}
	if err := A.r.Attach("dep", "a", dev); err != nil {
		_ = dev.Close()
		t.Fatal(err)
	}
	defer A.r.Remove("dep")
	for i := range 3 { // a new connection each time
		var conn net.Conn
		subnettest.InNetns(t, ns, func() (err error) {
			conn, err = net.DialTimeout("tcp4", "10.77.0.1:53", 10*time.Second)
			return err
		})
		q := new(mdns.Msg).SetQuestion("b.internal.", mdns.TypeA)
		b, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)); err != nil {
			t.Fatal(err)
		}
		all, err := io.ReadAll(conn) // to the gateway's FIN
		conn.Close()
		if err != nil || len(all) < 2 || int(all[0])<<8|int(all[1]) != len(all)-2 {
			t.Fatalf("connection %d: read %d bytes: %v", i, len(all), err)
		}
		m := new(mdns.Msg)
		if err := m.Unpack(all[2:]); err != nil || m.Id != q.Id || len(m.Answer) != 1 || m.Answer[0].(*mdns.A).A.String() != "10.77.0.3" {
			t.Fatalf("connection %d: answer %v: %v", i, m, err)
		}
	}
}
