//go:build idle

package p2p

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/identity"
)

// The idle anchor of docs/PERFORMANCE.md: one host, alone, with the
// daemon's default p2p settings (DHT, mDNS, relay, hole punching), for
// -idle.for; it reports the process's RSS and CPU use.
//
//	go test -tags idle -run TestIdle -v ./internal/p2p/

var idleFor = flag.Duration("idle.for", time.Minute, "how long the host idles")

// clockTicks is USER_HZ, 100 on every Linux platform Go supports.
const clockTicks = 100

func TestIdle(t *testing.T) {
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(context.Background(), Config{
		Listen:       []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"},
		MDNS:         true,
		DHT:          true,
		Relay:        true,
		HolePunching: true,
		ConnLow:      100,
		ConnHigh:     400,
		MaxMemory:    256 << 20,
		MaxFDs:       512,
	}, key, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	// Let start-up settle before measuring.
	settle := time.NewTimer(5 * time.Second)
	<-settle.C
	cpu0, wall0 := cpuTicks(t), time.Now()
	idle := time.NewTimer(*idleFor)
	<-idle.C
	cpu1, wall1 := cpuTicks(t), time.Now()
	pct := float64(cpu1-cpu0) / clockTicks / wall1.Sub(wall0).Seconds() * 100
	rss, hwm := statusKB(t, "VmRSS"), statusKB(t, "VmHWM")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	const mb = 1 << 20
	t.Logf("idle %s: cpu %.2f%% (%d ticks), rss %.1f MB (peak %.1f MB), Go heap in use %.1f MB, stacks %.1f MB, from the OS %.1f MB, %d goroutines",
		wall1.Sub(wall0).Round(time.Second), pct, cpu1-cpu0, float64(rss)/1024, float64(hwm)/1024,
		float64(ms.HeapInuse)/mb, float64(ms.StackInuse)/mb, float64(ms.Sys)/mb, runtime.NumGoroutine())
	fmt.Printf("BenchmarkIdleHost\t1\t%.3f cpu-%%\t%.1f rss-MB\t%.1f peak-rss-MB\t%.1f heap-MB\n",
		pct, float64(rss)/1024, float64(hwm)/1024, float64(ms.HeapInuse)/mb)
}

// cpuTicks returns the process's user+system time in clock ticks
// (/proc/self/stat fields 14 and 15).
func cpuTicks(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // after "pid (comm) "; field 3 is fields[0]
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("parse /proc/self/stat: %v %v", err1, err2)
	}
	return utime + stime
}

// statusKB returns a "Name: N kB" line of /proc/self/status.
func statusKB(t *testing.T, name string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", name)
	return 0
}
