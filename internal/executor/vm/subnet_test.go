//go:build integration

package vm_test

import (
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/executor/vm"
	"github.com/dmsnet/dms/internal/subnet"
	"github.com/dmsnet/dms/internal/subnet/link"
)

// TestSubnetGuest boots one guest on a subnet whose other end is the
// test: the guest pings another address of the subnet (a small packet,
// then one of the full MTU); the test sees each echo request with the
// guest's address as its source and answers it, and the guest's ping
// reports the replies. It looks up db (the search domain makes it
// db.internal) with the gateway, which the test answers over UDP. The
// guest also prints its interface's MTU and
// address and its resolv.conf. With mkfs.ext4 the payload runs in a root
// filesystem whose /etc/resolv.conf is a dangling symlink (as with
// systemd-resolved), so the guest init writes the root's; without, in the
// initramfs.
func TestSubnetGuest(t *testing.T) {
	ex := newExecutor(t, vm.Config{})
	addr, gw, peer := netip.MustParsePrefix("10.77.0.2/24"), netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("10.77.0.3")
	devs := make(chan subnet.Device, 1)
	s := spec()
	s.Command = []string{"sh", "-c", `cat /sys/class/net/dms0/mtu /proc/sys/net/ipv6/conf/dms0/disable_ipv6; ip -4 -o addr show dms0 | awk '{print $2, $4}'; cat /etc/resolv.conf
		ping -c 1 -W 30 10.77.0.3 | grep received
		ping -c 1 -W 30 -s 1392 10.77.0.3 | grep received
		nslookup -type=a db | grep -A1 ^Name:`}
	if mkfs, err := exec.LookPath("mkfs.ext4"); err == nil {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, "etc"), 0o755)
		os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(root, "etc", "resolv.conf"))
		os.MkdirAll(filepath.Join(root, "bin"), 0o755)
		bin, _ := os.ReadFile("/bin/busybox")
		os.WriteFile(filepath.Join(root, "bin", "busybox"), bin, 0o755)
		for _, applet := range []string{"sh", "cat", "ip", "awk", "ping", "grep", "nslookup"} {
			os.Symlink("busybox", filepath.Join(root, "bin", applet))
		}
		image := filepath.Join(t.TempDir(), "root.ext4")
		if out, err := exec.Command(mkfs, "-q", "-F", "-d", root, image, "16M").CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4: %v\n%s", err, out)
		}
		s.VM.Rootfs = image
		t.Log("in a root filesystem")
	}
	s.Subnet = &executor.Subnet{Addr: addr, DNS: gw, OpenGuest: func(context.Context) (*os.File, error) {
		q, dev, err := link.GuestPair(addr, gw)
		if err == nil {
			devs <- dev
		}
		return q, err
	}}
	began := time.Now()
	id, err := ex.Start(t.Context(), s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer ex.Remove(context.Background(), id)
	dev := <-devs
	defer dev.Close()

	// The data path's side: answer echo requests to peer.
	var mu sync.Mutex
	var seen []string // what the guest sent, and when
	go func() {
		bufs := make([][]byte, dev.BatchSize())
		for i := range bufs {
			bufs[i] = make([]byte, subnet.Offset+subnet.MTU)
		}
		sizes := make([]int, len(bufs))
		for {
			n, err := dev.Read(bufs, sizes, subnet.Offset)
			if err != nil {
				return
			}
			for i := range n {
				p := bufs[i][subnet.Offset : subnet.Offset+sizes[i]]
				src, dst := netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
				mu.Lock()
				seen = append(seen, src.String()+">"+dst.String()+" proto "+strconv.Itoa(int(p[9]))+" len "+strconv.Itoa(len(p))+" at "+time.Since(began).Round(time.Millisecond).String())
				mu.Unlock()
				reply := answer(p, addr.Addr(), gw, peer)
				if reply == nil {
					continue
				}
				buf := append(make([]byte, subnet.Offset), reply...)
				if _, err := dev.Write([][]byte{buf}, subnet.Offset); err != nil {
					mu.Lock()
					seen = append(seen, "Write: "+err.Error())
					mu.Unlock()
				}
			}
		}
	}()

	res, err := ex.Wait(t.Context(), id)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	var out, errb strings.Builder
	ex.Logs(t.Context(), id, executor.LogOptions{}, &out, &errb)
	mu.Lock()
	t.Logf("boot %v, run %v; the guest sent: %s", res.Boot, res.FinishedAt.Sub(res.StartedAt), strings.Join(seen, "; "))
	mu.Unlock()
	want := "1420\n1\ndms0 10.77.0.2/24\nnameserver 10.77.0.1\nsearch internal\noptions ndots:1\n" +
		"1 packets transmitted, 1 packets received, 0% packet loss\n" +
		"1 packets transmitted, 1 packets received, 0% packet loss\n" +
		"Name:\tdb.internal\nAddress: 10.77.0.3\n"
	if res.Reason != executor.ReasonExited || res.ExitCode != 0 || out.String() != want {
		t.Errorf("run = %s %d (%s)\nstdout %q\nstderr %q\nwant %q", res.Reason, res.ExitCode, res.Error, out.String(), errb.String(), want)
	}
	mu.Lock()
	defer mu.Unlock()
	var requests int
	for _, s := range seen {
		if strings.HasPrefix(s, "10.77.0.2>10.77.0.3 proto 1 len ") {
			requests++
		}
		if !strings.HasPrefix(s, "10.77.0.2>") {
			t.Errorf("a packet with another source: %s", s)
		}
	}
	if requests < 2 {
		t.Errorf("%d echo requests from 10.77.0.2 seen, want 2", requests)
	}
}

// answer returns the reply to the guest's packet p: an echo reply from
// peer, or the answer of a DNS query to gateway (db.internal is peer;
// other names are unknown), or nil.
func answer(p []byte, guest, gateway, peer netip.Addr) []byte {
	ihl := int(p[0]&0x0f) * 4
	if netip.AddrFrom4([4]byte(p[12:16])) != guest || len(p) < ihl+8 {
		return nil
	}
	dst := netip.AddrFrom4([4]byte(p[16:20]))
	var payload []byte
	switch {
	case p[9] == 1 && dst == peer && p[ihl] == 8:
		icmp := append([]byte(nil), p[ihl:]...)
		icmp[0], icmp[2], icmp[3] = 0, 0, 0
		binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
		payload = icmp
	case p[9] == 17 && dst == gateway && binary.BigEndian.Uint16(p[ihl+2:]) == 53:
		q := p[ihl+8:]
		if len(q) < 12 {
			return nil
		}
		// The question: labels, then type and class.
		i, name := 12, ""
		for i < len(q) && q[i] != 0 && i+1+int(q[i]) <= len(q) {
			name += string(q[i+1:i+1+int(q[i])]) + "."
			i += 1 + int(q[i])
		}
		if i+5 > len(q) {
			return nil
		}
		question := q[12 : i+5]
		qtype := binary.BigEndian.Uint16(q[i+1:])
		resp := append([]byte{q[0], q[1], 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0}, question...)
		switch {
		case strings.EqualFold(name, "db.internal.") && qtype == 1:
			resp[7] = 1
			resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
			resp = append(resp, peer.AsSlice()...)
		case strings.EqualFold(name, "db.internal."):
		default:
			resp[3] |= 3 // NXDOMAIN
		}
		udp := make([]byte, 8, 8+len(resp))
		binary.BigEndian.PutUint16(udp[0:], 53)
		copy(udp[2:4], p[ihl:ihl+2])
		binary.BigEndian.PutUint16(udp[4:], uint16(8+len(resp)))
		udp = append(udp, resp...)
		pseudo := append(append(gateway.AsSlice(), guest.AsSlice()...), 0, 17, udp[4], udp[5])
		sum := checksum(append(pseudo, udp...))
		if sum == 0 {
			sum = 0xffff // 0 would mean none
		}
		binary.BigEndian.PutUint16(udp[6:], sum)
		payload = udp
	default:
		return nil
	}
	ip := make([]byte, 20, 20+len(payload))
	ip[0], ip[8], ip[9] = 0x45, 64, p[9]
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(payload)))
	copy(ip[12:16], dst.AsSlice())
	copy(ip[16:20], guest.AsSlice())
	binary.BigEndian.PutUint16(ip[10:], checksum(ip))
	return append(ip, payload...)
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
