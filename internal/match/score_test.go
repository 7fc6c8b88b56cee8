package match

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)

func baseOffer() Offer {
	return Offer{
		Free:        res(4000, gib(8), gib(100), GPU{Index: 0, Vendor: "nvidia", Model: "T4", VRAM: gib(16)}),
		Executors:   []string{"docker", "wasm"},
		Location:    Location{Continent: "EU", Country: "DE", City: "Berlin"},
		Price:       Price{CPU: 100_000, RAM: 10_000},
		Performance: Performance{CPUSingle: 1000, MemoryMBps: 10000, DiskWriteMBps: 500, DiskReadMBps: 1000, FsyncP50: 2000},
	}
}

func TestScoreEligibility(t *testing.T) {
	tests := []struct {
		name    string
		offer   func(*Offer)
		req     Request
		reasons []string
	}{
		{name: "empty request", req: Request{}},
		{name: "exact fit", req: Request{Resources: res(4000, gib(8), gib(100), GPU{VRAM: gib(16)})}},
		{name: "resources short", req: Request{Resources: res(8000, gib(8), 0)}, reasons: []string{"cpu: need 8, have 4 free"}},
		{name: "executor missing", req: Request{Executors: []string{"docker", "vm"}}, reasons: []string{"executor: need vm, offered docker, wasm"}},
		{name: "executor case ignored", req: Request{Executors: []string{"Docker"}}},
		{name: "no executors offered", offer: func(o *Offer) { o.Executors = nil }, req: Request{Executors: []string{"wasm"}},
			reasons: []string{"executor: need wasm, offered none"}},
		{name: "location accepted", req: Request{Location: LocationRule{Accept: []Location{{Country: "FR"}, {Country: "de"}}}}},
		{name: "location not accepted", req: Request{Location: LocationRule{Accept: []Location{{Country: "FR"}, {Continent: "NA"}}}},
			reasons: []string{"location: EU/DE/Berlin is not among the accepted */FR/*, NA/*/*"}},
		{name: "location rejected", req: Request{Location: LocationRule{Reject: []Location{{City: "berlin"}}}},
			reasons: []string{"location: EU/DE/Berlin is rejected (*/*/berlin)"}},
		{name: "unknown location not accepted", offer: func(o *Offer) { o.Location = Location{} },
			req:     Request{Location: LocationRule{Accept: []Location{{Continent: "EU"}}}},
			reasons: []string{"location: unknown is not among the accepted EU/*/*"}},
		{name: "price at the limit", req: Request{Resources: res(2000, gib(1), 0), MaxPrice: 210_000}},
		{name: "price above the limit", req: Request{Resources: res(2000, gib(1), 0), MaxPrice: 200_000},
			reasons: []string{"price: costs 0.21/h, max 0.2/h"}},
		{name: "window within availability", offer: func(o *Offer) { o.Available = Window{Start: t0, End: t0.Add(10 * time.Hour)} },
			req: Request{Window: Window{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}}},
		{name: "window exactly availability", offer: func(o *Offer) { o.Available = Window{Start: t0, End: t0.Add(10 * time.Hour)} },
			req: Request{Window: Window{Start: t0, End: t0.Add(10 * time.Hour)}}},
		{name: "window past availability", offer: func(o *Offer) { o.Available = Window{End: t0.Add(time.Hour)} },
			req:     Request{Window: Window{Start: t0, End: t0.Add(2 * time.Hour)}},
			reasons: []string{"time: available ..2026-01-02T11:00:00Z, does not cover 2026-01-02T10:00:00Z..2026-01-02T12:00:00Z"}},
		{name: "open-ended request, bounded availability", offer: func(o *Offer) { o.Available = Window{End: t0} },
			req:     Request{Window: Window{Start: t0.Add(-time.Hour)}},
			reasons: []string{"time: available ..2026-01-02T10:00:00Z, does not cover 2026-01-02T09:00:00Z.."}},
		{name: "every reason at once", offer: func(o *Offer) { o.Executors = []string{"wasm"} },
			req: Request{Resources: res(0, gib(16), 0), Executors: []string{"docker"}, Location: LocationRule{Reject: []Location{{Continent: "EU"}}}, MaxPrice: 1},
			reasons: []string{"ram: need 16GiB, have 8GiB free", "executor: need docker, offered wasm",
				"location: EU/DE/Berlin is rejected (EU/*/*)", "price: costs 0.16/h, max 0.000001/h"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := baseOffer()
			if tc.offer != nil {
				tc.offer(&o)
			}
			r := Score(o, tc.req)
			var got []string
			for _, x := range r.Reasons {
				got = append(got, x.String())
			}
			if r.Eligible != (len(tc.reasons) == 0) || !slices.Equal(got, tc.reasons) {
				t.Fatalf("Score(req) = eligible %v %q, want %q", r.Eligible, got, tc.reasons)
			}
			if !r.Eligible && r.Value != 0 {
				t.Fatalf("Score(req).Value = %v for an ineligible offer, want 0", r.Value)
			}
			if r.Eligible && (r.Value < 0 || r.Value > 1) {
				t.Fatalf("Score(req).Value = %v, want within [0,1]", r.Value)
			}
		})
	}
}

func TestScoreFormula(t *testing.T) {
	o := baseOffer()
	req := Request{Resources: res(1000, gib(1), 0)} // costs 0.11/h
	r := Score(o, req)
	wantPrice := 1 / (1 + 0.11)
	if !near(r.Parts.Price, wantPrice) {
		t.Errorf("price part = %v, want %v", r.Parts.Price, wantPrice)
	}
	if !near(r.Parts.Performance, 0.5) {
		t.Errorf("performance part of the reference machine = %v, want 0.5", r.Parts.Performance)
	}
	// Location and time do not apply: only price and performance count, equally.
	if r.Weights.Location != 0 || r.Weights.Time != 0 || !near(r.Value, (wantPrice+0.5)/2) {
		t.Errorf("Score = %+v, want value %v from price and performance only", r, (wantPrice+0.5)/2)
	}

	req.MaxPrice = 220_000 // the cost is half the limit
	if r := Score(o, req); !near(r.Parts.Price, 0.22/(0.22+0.11)) {
		t.Errorf("price part against MaxPrice = %v, want %v", r.Parts.Price, 0.22/(0.22+0.11))
	}

	req.Prefer.Locations = []Location{{Country: "DE", City: "Munich"}, {Continent: "EU"}}
	if r := Score(o, req); r.Parts.Location != 1 {
		t.Errorf("location part = %v, want 1 (EU matches fully)", r.Parts.Location)
	}
	req.Prefer.Locations = []Location{{Country: "DE", City: "Munich"}}
	if r := Score(o, req); r.Parts.Location != 0.5 {
		t.Errorf("location part = %v, want 0.5 (country but not city)", r.Parts.Location)
	}

	o.Available = Window{End: t0.Add(time.Hour)}
	req.Window = Window{Start: t0, End: t0.Add(time.Hour)}
	req.Prefer.Window = Window{Start: t0, End: t0.Add(4 * time.Hour)}
	if r := Score(o, req); !near(r.Parts.Time, 0.25) || r.Weights.Time == 0 {
		t.Errorf("time part = %v (weight %v), want 0.25", r.Parts.Time, r.Weights.Time)
	}

	req.Prefer.Weights = Weights{Location: 1}
	req.Prefer.Window = Window{}
	if r := Score(o, req); r.Value != 0.5 {
		t.Errorf("value with location weight only = %v, want the location part 0.5", r.Value)
	}
	req.Prefer.Locations = nil
	if r := Score(o, req); r.Value != 1 {
		t.Errorf("value with no applicable weight = %v, want 1", r.Value)
	}
	req.Prefer.Weights = Weights{Price: math.NaN()}
	if r := Score(o, req); math.IsNaN(r.Value) || r.Weights.Price != DefaultWeights.Price {
		t.Errorf("Score with NaN weights = %+v, want default weights", r)
	}
}

func TestScoreSoftOrder(t *testing.T) {
	cheap, dear, fast, slow := baseOffer(), baseOffer(), baseOffer(), baseOffer()
	dear.Price.CPU *= 10
	fast.Performance.CPUSingle *= 2
	slow.Performance = Performance{}
	req := Request{Resources: res(1000, gib(1), 0)}
	pairs := []struct {
		name          string
		better, worse Offer
	}{
		{"lower price ranks higher", cheap, dear},
		{"faster cpu ranks higher", fast, cheap},
		{"unmeasured ranks lowest", cheap, slow},
	}
	for _, p := range pairs {
		if b, w := Score(p.better, req).Value, Score(p.worse, req).Value; !(b > w) {
			t.Errorf("%s: %v vs %v", p.name, b, w)
		}
	}
}

func TestRank(t *testing.T) {
	a, b, c, d := baseOffer(), baseOffer(), baseOffer(), baseOffer()
	b.Price.CPU = 0                  // best
	c.Free.CPU = 0                   // ineligible
	d.Performance.CPUSingle = 1000.0 // same as a: tie, input order kept
	offers := []Offer{c, a, b, d}
	got := Rank(Request{Resources: res(1000, 0, 0)}, offers)
	var order []int
	for _, r := range got {
		order = append(order, r.Index)
	}
	if want := []int{2, 1, 3, 0}; !slices.Equal(order, want) {
		t.Fatalf("Rank order = %v, want %v", order, want)
	}
	if got[3].Rating.Eligible || len(got[3].Rating.Reasons) == 0 {
		t.Fatalf("last = %+v, want ineligible with reasons", got[3])
	}
	// Deterministic.
	again := Rank(Request{Resources: res(1000, 0, 0)}, offers)
	for i := range got {
		if got[i].Index != again[i].Index || got[i].Rating.Value != again[i].Rating.Value {
			t.Fatalf("Rank is not deterministic: %v then %v", got[i], again[i])
		}
	}
}

func TestRequestValidate(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		err  string
	}{
		{"zero", Request{}, ""},
		{"negative cpu", Request{Resources: res(-1, 0, 0)}, "negative"},
		{"window reversed", Request{Window: Window{Start: t0, End: t0.Add(-time.Second)}}, "end before start"},
		{"weights infinite", Request{Prefer: Preferences{Weights: Weights{Price: math.Inf(1)}}}, "weights"},
		{"too many gpus", Request{Resources: Resources{GPUs: make([]GPU, MaxGPUs+1)}}, "gpus"},
		{"all at once", Request{Resources: res(-1, 0, 0), MaxPrice: -1}, "max_price"},
	}
	for _, tc := range tests {
		err := tc.req.Validate()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: Validate() = %v, want error containing %q", tc.name, err, tc.err)
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// bids returns n varied offers, a third of them ineligible for benchRequest.
func bids(n int) []Offer {
	out := make([]Offer, n)
	for i := range out {
		o := baseOffer()
		o.Free.CPU = MilliCPU(1000 * (1 + i%8))
		o.Free.GPUs = []GPU{{Index: 0, Vendor: "nvidia", VRAM: gib(float64(8 * (1 + i%3)))}, {Index: 1, Vendor: "amd", VRAM: gib(16)}}
		o.Price.CPU = Money(10_000 * (1 + i%17))
		o.Performance.CPUSingle = float64(500 + i%1000)
		o.Location.Country = []string{"DE", "FR", "US"}[i%3]
		out[i] = o
	}
	return out
}

var benchRequest = Request{
	Resources: res(2000, gib(4), gib(10), GPU{Vendor: "nvidia", VRAM: gib(16)}),
	Executors: []string{"docker"},
	Location:  LocationRule{Reject: []Location{{Country: "US"}}},
	MaxPrice:  5_000_000,
	Prefer:    Preferences{Locations: []Location{{Country: "DE"}}},
}

func BenchmarkCompare(b *testing.B) {
	o := bids(1)[0]
	for b.Loop() {
		Compare(o.Free, benchRequest.Resources)
	}
}

func BenchmarkScore(b *testing.B) {
	o := bids(1)[0]
	for b.Loop() {
		Score(o, benchRequest)
	}
}

// BenchmarkRank1000 ranks 1,000 bids; the anchor is the 100 ms budget the
// orchestrator has for it, reported as budget-x (how many times faster).
func BenchmarkRank1000(b *testing.B) {
	offers := bids(1000)
	for b.Loop() {
		Rank(benchRequest, offers)
	}
	perOp := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(perOp.Microseconds())/1000, "ms/rank")
	b.ReportMetric(float64(100*time.Millisecond)/float64(perOp), "budget-x")
}

func ExampleScore() {
	provider := Offer{
		Free:      Resources{CPU: 4000, RAM: 8 << 30, Disk: 100 << 30},
		Executors: []string{"docker", "wasm"},
		Location:  Location{Continent: "EU", Country: "DE"},
		Price:     Price{CPU: 100_000}, // 0.1 per core-hour
	}
	req := Request{
		Resources: Resources{CPU: 2000, RAM: 16 << 30},
		Executors: []string{"vm"},
		Location:  LocationRule{Accept: []Location{{Country: "FR"}}},
	}
	r := Score(provider, req)
	fmt.Println(r.Eligible)
	for _, why := range r.Reasons {
		fmt.Println(why)
	}
	// Output:
	// false
	// ram: need 16GiB, have 8GiB free
	// executor: need vm, offered docker, wasm
	// location: EU/DE/* is not among the accepted */FR/*
}
