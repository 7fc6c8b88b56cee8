package match

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Reference values of the scoring formula: an offer exactly at a reference
// scores 0.5 in that part. See Score.
const (
	PriceReference     = 1.0    // currency units per hour, when the request sets no MaxPrice
	CPUReference       = 1000.0 // CPUSingle points
	MemoryReference    = 10000.0
	DiskWriteReference = 500.0  // MB/s
	DiskReadReference  = 1000.0 // MB/s
	FsyncReference     = 2000.0 // µs
)

// Shares of each benchmark figure in the performance part.
const (
	shareCPU       = 0.4
	shareMemory    = 0.2
	shareDiskWrite = 0.1
	shareDiskRead  = 0.1
	shareFsync     = 0.2
)

// Parts are the soft parts of a rating, each in [0,1], higher is better.
type Parts struct {
	Price       float64 `json:"price"`
	Performance float64 `json:"performance"`
	Location    float64 `json:"location"`
	Time        float64 `json:"time"`
}

// Rating is how an offer fares against a request.
type Rating struct {
	// Eligible is true when every hard constraint holds; otherwise Reasons
	// says which did not and Value is 0.
	Eligible bool     `json:"eligible"`
	Reasons  []Reason `json:"reasons,omitempty"`
	// Value in [0,1] ranks eligible offers: higher is better.
	Value float64 `json:"value"`
	// Parts and Weights show how Value was made: Value = Σ Weights·Parts /
	// Σ Weights. A part that does not apply has weight 0.
	Parts   Parts   `json:"parts"`
	Weights Weights `json:"weights"`
	// Cost is the price of the requested resources for one hour at the
	// offer's prices.
	Cost Money `json:"cost"`
	// GPUs are the indices of the offer's GPUs assigned to the wanted
	// GPUs, in order, when eligible.
	GPUs []int `json:"gpus,omitempty"`
}

// Score rates offer o against request r. It is deterministic and pure, and
// both sides use it: a provider scores its own offer to decide whether to
// bid, an orchestrator scores (Rank) the offers it received.
//
// Hard constraints, each giving a Reason when it fails:
//   - resources: Compare(o.Free, r.Resources) fits (an exact fit is a fit);
//   - executor: every executor in r.Executors is in o.Executors;
//   - location: o.Location matches one of r.Location.Accept (if any) and
//     none of r.Location.Reject;
//   - price: r.MaxPrice is 0 or o.Price.Hourly(r.Resources) ≤ r.MaxPrice;
//   - time: r.Window lies within o.Available.
//
// Soft parts, each in [0,1], with x/(x+ref) for "more is better" and
// ref/(ref+x) for "less is better", so that the reference scores 0.5:
//   - price = ref/(ref+cost), cost = hourly cost of r.Resources, ref =
//     r.MaxPrice when set, else PriceReference;
//   - performance = 0.4·cpu + 0.2·memory + 0.1·disk write + 0.1·disk read +
//     0.2·fsync, each against its reference (CPUReference …); a figure not
//     measured (0) counts 0;
//   - location = the best, over r.Prefer.Locations, share of a preferred
//     pattern's fields that o.Location matches (applies only when the list is
//     not empty);
//   - time = the share of r.Prefer.Window that o.Available covers (applies
//     only when both sides of that window are set).
//
// Value = Σ w·part / Σ w over the parts that apply, with w from
// r.Prefer.Weights (DefaultWeights when all zero). When no weighted part
// applies, every eligible offer gets Value 1.
func Score(o Offer, r Request) Rating {
	var rt Rating
	fit := Compare(o.Free, r.Resources)
	rt.Reasons = append(rt.Reasons, fit.Reasons...)
	rt.GPUs = fit.GPUs
	if missing := missingExecutors(o.Executors, r.Executors); len(missing) > 0 {
		have := strings.Join(o.Executors, ", ")
		if have == "" {
			have = "none"
		}
		need := strings.Join(missing, ", ")
		rt.Reasons = append(rt.Reasons, Reason{Dimension: DimExecutor, Need: need, Have: have,
			Message: fmt.Sprintf("need %s, offered %s", need, have)})
	}
	if why := locationRefusal(o.Location, r.Location); why != "" {
		rt.Reasons = append(rt.Reasons, Reason{Dimension: DimLocation, Have: o.Location.String(), Message: why})
	}
	rt.Cost = o.Price.Hourly(r.Resources)
	if r.MaxPrice > 0 && rt.Cost > r.MaxPrice {
		rt.Reasons = append(rt.Reasons, Reason{Dimension: DimPrice, Need: r.MaxPrice.String(), Have: rt.Cost.String(),
			Message: fmt.Sprintf("costs %s/h, max %s/h", rt.Cost, r.MaxPrice)})
	}
	if !o.Available.Contains(r.Window) {
		rt.Reasons = append(rt.Reasons, Reason{Dimension: DimTime, Need: r.Window.String(), Have: o.Available.String(),
			Message: fmt.Sprintf("available %s, does not cover %s", o.Available, r.Window)})
	}
	if len(rt.Reasons) > 0 {
		rt.GPUs = nil
		return rt
	}
	rt.Eligible = true

	w := r.Prefer.Weights
	if w == (Weights{}) || !validWeights(w) {
		w = DefaultWeights
	}
	ref := PriceReference
	if r.MaxPrice > 0 {
		ref = r.MaxPrice.Units()
	}
	rt.Parts.Price = less(rt.Cost.Units(), ref)
	rt.Parts.Performance = performance(o.Performance)
	if len(r.Prefer.Locations) > 0 {
		for _, p := range r.Prefer.Locations {
			rt.Parts.Location = max(rt.Parts.Location, o.Location.closeness(p))
		}
	} else {
		w.Location = 0
	}
	if pw := r.Prefer.Window; !pw.Start.IsZero() && !pw.End.IsZero() && pw.End.After(pw.Start) {
		rt.Parts.Time = o.Available.coverage(pw)
	} else {
		w.Time = 0
	}
	rt.Weights = w
	sum := w.Price + w.Performance + w.Location + w.Time
	if sum == 0 {
		rt.Value = 1
		return rt
	}
	rt.Value = (w.Price*rt.Parts.Price + w.Performance*rt.Parts.Performance +
		w.Location*rt.Parts.Location + w.Time*rt.Parts.Time) / sum
	return rt
}

// Ranked is one offer's place in a ranking: its position in the input and
// its rating.
type Ranked struct {
	Index  int    `json:"index"`
	Rating Rating `json:"rating"`
}

// Rank scores every offer against r and orders them: eligible offers first,
// by Value from highest, ties by input order; then the ineligible ones in
// input order, with their reasons.
func Rank(r Request, offers []Offer) []Ranked {
	out := make([]Ranked, len(offers))
	for i, o := range offers {
		out[i] = Ranked{Index: i, Rating: Score(o, r)}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Rating, out[j].Rating
		if a.Eligible != b.Eligible {
			return a.Eligible
		}
		return a.Value > b.Value
	})
	return out
}

func validWeights(w Weights) bool {
	for _, v := range []float64{w.Price, w.Performance, w.Location, w.Time} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// more is x/(x+ref): 0 at 0, 0.5 at ref, towards 1 above. Not measured or
// nonsense values count 0.
func more(x, ref float64) float64 {
	if !(x > 0) || math.IsInf(x, 0) {
		return 0
	}
	return x / (x + ref)
}

// less is ref/(ref+x): 1 at 0, 0.5 at ref, towards 0 above.
func less(x, ref float64) float64 {
	if x <= 0 {
		return 1
	}
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return 0
	}
	return ref / (ref + x)
}

func performance(p Performance) float64 {
	fsync := 0.0
	if p.FsyncP50 > 0 { // 0 is "not measured", not "instant"
		fsync = less(p.FsyncP50, FsyncReference)
	}
	return shareCPU*more(p.CPUSingle, CPUReference) +
		shareMemory*more(p.MemoryMBps, MemoryReference) +
		shareDiskWrite*more(p.DiskWriteMBps, DiskWriteReference) +
		shareDiskRead*more(p.DiskReadMBps, DiskReadReference) +
		shareFsync*fsync
}

func missingExecutors(have, want []string) []string {
	var missing []string
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h string) bool { return strings.EqualFold(h, w) }) &&
			!slices.Contains(missing, w) {
			missing = append(missing, w)
		}
	}
	return missing
}

// locationRefusal says why l breaks rule, or "" when it does not.
func locationRefusal(l Location, rule LocationRule) string {
	for _, p := range rule.Reject {
		if l.Within(p) {
			return fmt.Sprintf("%s is rejected (%s)", l, p)
		}
	}
	if len(rule.Accept) == 0 {
		return ""
	}
	for _, p := range rule.Accept {
		if l.Within(p) {
			return ""
		}
	}
	acc := make([]string, len(rule.Accept))
	for i, p := range rule.Accept {
		acc[i] = p.String()
	}
	return fmt.Sprintf("%s is not among the accepted %s", l, strings.Join(acc, ", "))
}
