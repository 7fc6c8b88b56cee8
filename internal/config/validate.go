package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Validate reports every problem in cfg at once (errors.Join), each naming
// its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		bad("log.format", "%q: want text or json", c.Log.Format)
	}

	if c.Log.MaxSize < 1<<20 {
		bad("log.max_size", "%s: want at least 1MiB", c.Log.MaxSize)
	}
	if c.Log.MaxFiles < 1 {
		bad("log.max_files", "%d: want at least 1", c.Log.MaxFiles)
	}
	t := c.Telemetry
	checkURL := func(key, raw string) {
		if raw == "" {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(key, "%q: want an http(s) URL such as http://127.0.0.1:4318", raw)
		}
	}
	checkURL("telemetry.otlp_endpoint", t.OTLPEndpoint)
	if !(t.Sampling >= 0 && t.Sampling <= 1) {
		bad("telemetry.sampling", "%v: want a share from 0 to 1", t.Sampling)
	}
	if t.SpanQueue < 1 {
		bad("telemetry.span_queue", "%d: want at least 1", t.SpanQueue)
	}
	if t.SpanRetention.D() < time.Minute {
		bad("telemetry.span_retention", "%s: want at least 1m", t.SpanRetention)
	}
	es := t.Elasticsearch
	checkURL("telemetry.elasticsearch.url", es.URL)
	if es.URL != "" && (es.Index == "" || strings.ToLower(es.Index) != es.Index || strings.ContainsAny(es.Index, " \\/*?\"<>|,#:")) {
		bad("telemetry.elasticsearch.index", "%q: want a lower-case index name without spaces or \\/*?\"<>|,#:", es.Index)
	}
	if es.Batch < 1 || es.Batch > 10000 {
		bad("telemetry.elasticsearch.batch", "%d: want 1 to 10000", es.Batch)
	}
	if es.FlushInterval.D() <= 0 {
		bad("telemetry.elasticsearch.flush_interval", "%s: want more than 0", es.FlushInterval)
	}
	if es.SpoolSize < 1<<20 {
		bad("telemetry.elasticsearch.spool_size", "%s: want at least 1MiB", es.SpoolSize)
	}
	if es.Username == "" && es.PasswordFile != "" {
		bad("telemetry.elasticsearch.username", "password_file is set without a username")
	}

	for _, a := range c.P2P.Listen {
		if !strings.HasPrefix(a, "/") {
			bad("p2p.listen", "%q is not a multiaddr (example: /ip4/0.0.0.0/tcp/9000)", a)
		}
	}
	for _, a := range c.P2P.Bootstrap {
		if !strings.HasPrefix(a, "/") || !strings.Contains(a, "/p2p/") {
			bad("p2p.bootstrap", "%q is not a full multiaddr with /p2p/<peer ID>", a)
		}
	}
	if !strings.HasPrefix(c.P2P.ProtocolPrefix, "/") || strings.HasSuffix(c.P2P.ProtocolPrefix, "/") || strings.ContainsAny(c.P2P.ProtocolPrefix, " \t") {
		bad("p2p.protocol_prefix", "%q: want a path such as /dms", c.P2P.ProtocolPrefix)
	}
	if c.P2P.ConnLow < 1 || c.P2P.ConnHigh < c.P2P.ConnLow {
		bad("p2p.conn_high", "want 1 <= conn_low (%d) <= conn_high (%d)", c.P2P.ConnLow, c.P2P.ConnHigh)
	}
	if c.P2P.MaxInboundConns < 0 || c.P2P.InboundReserve < 0 {
		bad("p2p.max_inbound_conns", "inbound limit %d, reserve %d: must not be negative", c.P2P.MaxInboundConns, c.P2P.InboundReserve)
	}
	if c.P2P.MaxInboundConns > 0 && c.P2P.InboundReserve >= c.P2P.MaxInboundConns {
		bad("p2p.inbound_reserve", "%d: want less than max_inbound_conns %d", c.P2P.InboundReserve, c.P2P.MaxInboundConns)
	}
	if c.P2P.MaxConnsPerPeer < 1 {
		bad("p2p.max_conns_per_peer", "%d: want at least 1", c.P2P.MaxConnsPerPeer)
	}
	if c.P2P.MaxConnsPerIP < 1 {
		bad("p2p.max_conns_per_ip", "%d: want at least 1", c.P2P.MaxConnsPerIP)
	}
	if c.P2P.MaxMemory < 16<<20 {
		bad("p2p.max_memory", "%s is too small (at least 16MiB)", c.P2P.MaxMemory)
	}
	if c.P2P.MaxFDs < 16 {
		bad("p2p.max_fds", "%d is too small (at least 16)", c.P2P.MaxFDs)
	}

	if err := CheckLoopback(c.API.Listen); err != nil {
		errs = append(errs, fmt.Errorf("api.listen: %w", err))
	}

	if c.Actor.Mailbox < 1 {
		bad("actor.mailbox", "%d: want at least 1", c.Actor.Mailbox)
	}
	if c.Actor.PeerRate <= 0 {
		bad("actor.peer_rate", "%g: want a positive rate", c.Actor.PeerRate)
	}
	if c.Actor.PeerBurst < 1 {
		bad("actor.peer_burst", "%d: want at least 1", c.Actor.PeerBurst)
	}
	if c.Actor.MaxEnvelope < 1<<10 || c.Actor.MaxEnvelope > 64<<20 {
		bad("actor.max_envelope", "%s: want between 1KiB and 64MiB", c.Actor.MaxEnvelope)
	}
	if c.Actor.DefaultTimeout <= 0 {
		bad("actor.default_timeout", "%s: want a positive duration", c.Actor.DefaultTimeout)
	}
	if c.Actor.MaxSessionsPerLink < 1 || c.Actor.MaxSessionsPerLink > 1<<16 {
		bad("actor.max_sessions_per_link", "%d: want 1 to 65536", c.Actor.MaxSessionsPerLink)
	}
	if c.Actor.MaxExpiry < c.Actor.DefaultTimeout {
		bad("actor.max_expiry", "%s is shorter than actor.default_timeout %s", c.Actor.MaxExpiry, c.Actor.DefaultTimeout)
	}

	if c.Cap.MaxDepth < 1 || c.Cap.MaxDepth > 64 {
		bad("cap.max_depth", "%d: want 1 to 64", c.Cap.MaxDepth)
	}
	if c.Cap.ClockSkew < 0 {
		bad("cap.clock_skew", "%s: want zero or positive", c.Cap.ClockSkew)
	}

	if c.Resources.ReserveCPU < 0 {
		bad("resources.reserve_cpu", "%s: want zero or positive", c.Resources.ReserveCPU)
	}
	if c.Resources.BenchmarkBudget <= 0 {
		bad("resources.benchmark_budget", "%s: want a positive duration", c.Resources.BenchmarkBudget)
	}

	switch c.Executor.VM.Accel {
	case "tcg", "kvm":
	default:
		bad("executor.vm.accel", "%q: want tcg or kvm", c.Executor.VM.Accel)
	}
	if k := c.Executor.VM.Kernel; k != "" && !filepath.IsAbs(k) {
		bad("executor.vm.kernel", "%q: want an absolute path", k)
	}
	if c.Executor.VM.Enabled && c.Executor.VM.QEMU == "" {
		bad("executor.vm.qemu", "empty while the vm executor is enabled")
	}
	if c.Executor.WASM.MaxMemory < 64<<10 || c.Executor.WASM.MaxMemory > 4<<30 {
		bad("executor.wasm.max_memory", "%s: want between 64KiB and 4GiB (the wasm32 limit)", c.Executor.WASM.MaxMemory)
	}
	for i, b := range c.Executor.BlockNetworks {
		if _, err := netip.ParsePrefix(b); err != nil && b != "host" {
			bad(fmt.Sprintf("executor.block_networks[%d]", i), "%q: want a CIDR prefix such as 169.254.0.0/16, or host", b)
		}
	}
	if d := c.Executor.WASM.CPUCgroup; d != "" && !filepath.IsAbs(d) {
		bad("executor.wasm.cpu_cgroup", "%q: want an absolute path (a cgroup directory)", d)
	}

	o := c.Orchestrator
	for _, d := range []struct {
		key string
		v   Duration
	}{{"orchestrator.bid_window", o.BidWindow}, {"orchestrator.reservation_ttl", o.ReservationTTL}, {"orchestrator.heartbeat", o.Heartbeat}, {"orchestrator.lost_after", o.LostAfter}, {"orchestrator.lease", o.Lease}} {
		if d.v <= 0 {
			bad(d.key, "%s: want a positive duration", d.v)
		}
	}
	if o.QueueTimeout < 0 {
		bad("orchestrator.queue_timeout", "%s: want zero (wait forever) or positive", o.QueueTimeout)
	}
	if o.LostAfter < 2*o.Heartbeat {
		bad("orchestrator.lost_after", "%s: want at least twice orchestrator.heartbeat (%s)", o.LostAfter, o.Heartbeat)
	}
	if o.StopAfter < 0 {
		bad("orchestrator.stop_after", "%s: want zero (twice orchestrator.lost_after) or positive", o.StopAfter)
	} else if o.StopAfter != 0 && o.StopAfter < o.LostAfter {
		bad("orchestrator.stop_after", "%s is shorter than orchestrator.lost_after %s", o.StopAfter, o.LostAfter)
	}
	if o.Lease < 2*o.Heartbeat {
		bad("orchestrator.lease", "%s: want at least twice orchestrator.heartbeat (%s)", o.Lease, o.Heartbeat)
	}
	if o.ReservationTTL < o.BidWindow {
		bad("orchestrator.reservation_ttl", "%s is shorter than orchestrator.bid_window %s", o.ReservationTTL, o.BidWindow)
	}
	if o.ReservationsPerPeer < 1 || o.ReservationsPerPeer > 10000 {
		bad("orchestrator.reservations_per_peer", "%d: want between 1 and 10000", o.ReservationsPerPeer)
	}
	if !(o.ReservedSharePerPeer > 0 && o.ReservedSharePerPeer <= 1) {
		bad("orchestrator.reserved_share_per_peer", "%g: want more than 0 and at most 1", o.ReservedSharePerPeer)
	}
	if o.Price < 0 {
		bad("orchestrator.price", "%g: want zero or positive", o.Price)
	}
	if c.Debug.Pprof != "" {
		if err := CheckLoopback(c.Debug.Pprof); err != nil {
			errs = append(errs, fmt.Errorf("debug.pprof: %w", err))
		}
	}
	if c.Debug.MemoryLimit != 0 && c.Debug.MemoryLimit < 16<<20 {
		bad("debug.memory_limit", "%s is too small (at least 16MiB, or 0 for none)", c.Debug.MemoryLimit)
	}
	if l := c.Location.Country; l != "" && (len(l) != 2 || strings.ToUpper(l) != l) {
		bad("location.country", "%q: want an ISO 3166-1 alpha-2 code such as DE", l)
	}
	if iv := c.Contract.Interval; iv < Duration(1e9) || iv > Duration(24*3600e9) {
		bad("contract.interval", "%s: want 1s to 24h", iv)
	}
	if p, err := c.Subnet.PoolPrefix(); err != nil {
		bad("subnet.pool", "%v", err)
	} else if c.Subnet.Bits < p.Bits() || c.Subnet.Bits > 30 {
		bad("subnet.bits", "%d: want %d (the length of subnet.pool %s) to 30", c.Subnet.Bits, p.Bits(), p)
	}
	if sub := c.Location.Subdivision; sub != "" {
		country, _, _ := strings.Cut(sub, "-")
		switch {
		case !subdivisionRE.MatchString(sub):
			bad("location.subdivision", "%q: want an ISO 3166-2 code such as US-CA", sub)
		case c.Location.Country != "" && country != c.Location.Country:
			bad("location.subdivision", "%q is not in location.country %s", sub, c.Location.Country)
		}
	}
	return errors.Join(errs...)
}

// subdivisionRE matches an ISO 3166-2 code: the country, '-', and one
// to three letters or digits.
var subdivisionRE = regexp.MustCompile(`^[A-Z]{2}-[A-Z0-9]{1,3}$`)

// CheckLoopback returns an error unless addr is host:port with a loopback
// host. The REST API must never listen on a reachable address.
func CheckLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: bad port", addr)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address: the API only listens on 127.0.0.1, ::1 or localhost", addr)
	}
	return nil
}
