package metrics

import (
	"maps"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dmsnet/dms/internal/actor"
)

// Sources are what the node already counts, read at every scrape. A nil
// field is a part this node does not run: its metrics are absent.
type Sources struct {
	// Actors returns the actor runtime's counters (actor.System.Stats).
	Actors func() map[string]uint64
	// Peers returns how many peers the node is connected to.
	Peers func() int
	// Traffic returns the bytes the node's libp2p streams read and wrote.
	Traffic func() (in, out uint64)
	// Deployments returns the deployments this node orchestrates, counted
	// by state (orchestrator.State).
	Deployments func() map[string]int
	// Orchestration returns the orchestrator's counters.
	Orchestration func() Orchestration
	// Bids returns the provider's counters of bid requests answered.
	Bids func() Bids
	// Allocations returns the allocations on this node, counted by state.
	Allocations func() map[string]int
	// Usage returns what each allocation on this node used so far.
	Usage func() []Usage
	// Contracts returns this node's contracts.
	Contracts func() Contracts
	// Subnet returns the subnet data path's counters.
	Subnet func() Subnet
	// Tracing returns the tracer's counters (telemetry.Tracing.Stats):
	// exported, dropped, export_errors, recorded, bad_traceparent, … and
	// the gauge export_queued.
	Tracing func() map[string]uint64
}

// Orchestration are the orchestrator's counters since the node started.
type Orchestration struct {
	Rounds     uint64 // bid rounds
	Placements uint64 // nodes of ensembles placed and committed (first placements and redeploys)
}

// Bids are a provider's counters since the node started.
type Bids struct {
	Made   uint64            // bids sent (one per bid request it could serve)
	Won    uint64            // commits of its bids accepted
	NoBids map[string]uint64 // nodes of requests it could not serve, by reason (deployproto.NoBid's Kind)
}

// Usage is what one allocation used so far.
type Usage struct {
	Deployment, Allocation string  // the deployment ID and the allocation's ID on this node
	CPUSeconds             float64 // CPU time of all its runs
	MemoryBytes            uint64  // memory in use at the last sample (0: not running)
}

// Contracts are this node's contracts and the notes it signed.
type Contracts struct {
	ByState       map[[2]string]int // {role, state} → contracts
	Issued        uint64            // notes signed as provider since the node started
	Countersigned uint64            // notes countersigned as requester since the node started
}

// Subnet are the subnet data path's counters since the node started.
type Subnet struct {
	Forwarded, Delivered, Datagrams, Sessions, Fallbacks, ReadErrors uint64
	Dropped                                                          map[string]uint64 // by reason
	DNSLocal, DNSForwarded, DNSFailed, DNSDropped                    uint64
}

// Watch registers a collector reading src at every scrape. Call it once.
func (m *Metrics) Watch(src Sources) error {
	return m.reg.Register(newSourceCollector(src))
}

type sourceCollector struct {
	src   Sources
	descs map[string]*prometheus.Desc
}

// desc names, help texts and labels of the scrape-time metrics.
var sourceDescs = []struct {
	name, help string
	labels     []string
}{
	{"dms_actor_events_total", "Actor runtime counters (actor.System.Stats): envelopes received, dispatched, sent, refusals by code, resends….", []string{"event"}},
	{"dms_p2p_peers", "Peers this node is connected to.", nil},
	{"dms_p2p_received_bytes_total", "Bytes read from libp2p streams (all protocols).", nil},
	{"dms_p2p_sent_bytes_total", "Bytes written to libp2p streams (all protocols).", nil},
	{"dms_deployments", "Deployments this node orchestrates, by state.", []string{"state"}},
	{"dms_deployments_queued", "Deployments waiting in the queue for a placement (state queued).", nil},
	{"dms_bid_rounds_total", "Bid rounds the orchestrators of this node ran.", nil},
	{"dms_placements_total", "Nodes of ensembles placed and committed by this node's orchestrators (first placements and redeploys).", nil},
	{"dms_bids_total", "Bids this node made as a provider.", nil},
	{"dms_bids_won_total", "Commits of this node's bids it accepted.", nil},
	{"dms_nobids_total", "Nodes of bid requests this node could not serve, by reason.", []string{"reason"}},
	{"dms_allocations", "Allocations on this node, by state.", []string{"state"}},
	{"dms_allocation_cpu_seconds_total", "CPU time an allocation's runs used.", []string{"deployment", "allocation"}},
	{"dms_allocation_memory_bytes", "Memory an allocation's instance used at the last sample (0: not running).", []string{"deployment", "allocation"}},
	{"dms_contracts", "This node's contracts, by role and state.", []string{"role", "state"}},
	{"dms_contract_notes_total", "Usage notes this node signed: issued (as provider) and countersigned (as requester).", []string{"kind"}},
	{"dms_subnet_packets_total", "Packets of the deployments' subnets, by what happened: forwarded (to another provider), datagram (of forwarded, sent as datagrams), delivered (to a local allocation).", []string{"kind"}},
	{"dms_subnet_dropped_total", "Packets of the deployments' subnets dropped, by reason.", []string{"reason"}},
	{"dms_subnet_streams_total", "Subnet streams: sessions opened, fallbacks (datagrams that went over a stream), read errors.", []string{"kind"}},
	{"dms_trace_spans_total", "Spans and trace contexts, by event: recorded (kept locally), exported (accepted by the collector), dropped (export queue full), record_dropped (local record queue full), export_errors, export_failed, record_errors, pruned, bad_traceparent (a peer's malformed traceparent, message handled untraced), otel_errors.", []string{"event"}},
	{"dms_trace_export_queued", "Spans waiting for export to the collector.", nil},
	{"dms_subnet_dns_queries_total", "DNS queries of the subnets' allocations, by result: local, forwarded, failed, dropped.", []string{"result"}},
}

func newSourceCollector(src Sources) *sourceCollector {
	c := &sourceCollector{src: src, descs: map[string]*prometheus.Desc{}}
	for _, d := range sourceDescs {
		c.descs[d.name] = prometheus.NewDesc(d.name, d.help, d.labels, nil)
	}
	return c
}

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, v, labels...)
	}
	gauge := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, v, labels...)
	}
	s := c.src
	if s.Actors != nil {
		for k, v := range s.Actors() {
			if actorEvent(k) {
				counter("dms_actor_events_total", float64(v), k)
			}
		}
	}
	if s.Peers != nil {
		gauge("dms_p2p_peers", float64(s.Peers()))
	}
	if s.Traffic != nil {
		in, out := s.Traffic()
		counter("dms_p2p_received_bytes_total", float64(in))
		counter("dms_p2p_sent_bytes_total", float64(out))
	}
	if s.Deployments != nil {
		byState := s.Deployments()
		for _, st := range slices.Sorted(maps.Keys(byState)) {
			gauge("dms_deployments", float64(byState[st]), st)
		}
		gauge("dms_deployments_queued", float64(byState["queued"]))
	}
	if s.Orchestration != nil {
		o := s.Orchestration()
		counter("dms_bid_rounds_total", float64(o.Rounds))
		counter("dms_placements_total", float64(o.Placements))
	}
	if s.Bids != nil {
		b := s.Bids()
		counter("dms_bids_total", float64(b.Made))
		counter("dms_bids_won_total", float64(b.Won))
		for r, v := range b.NoBids {
			counter("dms_nobids_total", float64(v), r)
		}
	}
	if s.Allocations != nil {
		for st, v := range s.Allocations() {
			gauge("dms_allocations", float64(v), st)
		}
	}
	if s.Usage != nil {
		for _, u := range s.Usage() {
			counter("dms_allocation_cpu_seconds_total", u.CPUSeconds, u.Deployment, u.Allocation)
			gauge("dms_allocation_memory_bytes", float64(u.MemoryBytes), u.Deployment, u.Allocation)
		}
	}
	if s.Contracts != nil {
		ct := s.Contracts()
		for k, v := range ct.ByState {
			gauge("dms_contracts", float64(v), k[0], k[1])
		}
		counter("dms_contract_notes_total", float64(ct.Issued), "issued")
		counter("dms_contract_notes_total", float64(ct.Countersigned), "countersigned")
	}
	if s.Subnet != nil {
		st := s.Subnet()
		counter("dms_subnet_packets_total", float64(st.Forwarded), "forwarded")
		counter("dms_subnet_packets_total", float64(st.Datagrams), "datagram")
		counter("dms_subnet_packets_total", float64(st.Delivered), "delivered")
		for r, v := range st.Dropped {
			counter("dms_subnet_dropped_total", float64(v), r)
		}
		counter("dms_subnet_streams_total", float64(st.Sessions), "session")
		counter("dms_subnet_streams_total", float64(st.Fallbacks), "fallback")
		counter("dms_subnet_streams_total", float64(st.ReadErrors), "read_error")
		counter("dms_subnet_dns_queries_total", float64(st.DNSLocal), "local")
		counter("dms_subnet_dns_queries_total", float64(st.DNSForwarded), "forwarded")
		counter("dms_subnet_dns_queries_total", float64(st.DNSFailed), "failed")
		counter("dms_subnet_dns_queries_total", float64(st.DNSDropped), "dropped")
	}
	if s.Tracing != nil {
		for k, v := range s.Tracing() {
			if k == "export_queued" {
				gauge("dms_trace_export_queued", float64(v))
				continue
			}
			counter("dms_trace_spans_total", float64(v), k)
		}
	}
}

// actorEvent reports whether a key of actor.System.Stats is exported: the
// runtime counts some keys by a code a peer sent (send_refused_<code>),
// so a key naming a code outside actor's set is left out (cardinality).
func actorEvent(k string) bool {
	if len(k) == 0 || len(k) > 64 {
		return false
	}
	for _, p := range []string{"send_refused_", "refused_"} {
		if code, ok := strings.CutPrefix(k, p); ok {
			i := index(actor.Code(code))
			return code == "unanswered" || (i != 0 && i != otherCode)
		}
	}
	return true
}
