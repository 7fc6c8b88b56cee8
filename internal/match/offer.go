package match

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Location is where a machine is, as its owner configured it (no look-ups).
// Every field is optional. In a rule (LocationRule, Preferences) a Location is
// a pattern: the fields it sets must all equal the machine's, ignoring case;
// a machine that does not state a field matches no pattern that sets it.
type Location struct {
	Continent string `json:"continent,omitempty" yaml:"continent,omitempty"` // AF, AN, AS, EU, NA, OC, SA
	Country   string `json:"country,omitempty" yaml:"country,omitempty"`     // ISO 3166-1 alpha-2: DE, US
	// Subdivision is the ISO 3166-2 code of the state or province, its
	// country included: US-CA, DE-BE.
	Subdivision string `json:"subdivision,omitempty" yaml:"subdivision,omitempty"`
	City        string `json:"city,omitempty" yaml:"city,omitempty"`
}

// String is "EU/DE/Berlin" — or "NA/US-CA/San Francisco" with a
// subdivision in place of the country — with "*" for a field not set, or
// "unknown".
func (l Location) String() string {
	if l == (Location{}) {
		return "unknown"
	}
	f := func(s string) string {
		if s == "" {
			return "*"
		}
		return s
	}
	country := l.Country
	if l.Subdivision != "" {
		country = l.Subdivision
	}
	return f(l.Continent) + "/" + f(country) + "/" + f(l.City)
}

// Within reports whether l matches pattern p: every field p sets equals l's.
// The empty pattern matches every location.
func (l Location) Within(p Location) bool {
	return eqOpt(p.Continent, l.Continent) && eqOpt(p.Country, l.Country) &&
		eqOpt(p.Subdivision, l.Subdivision) && eqOpt(p.City, l.City)
}

func eqOpt(pattern, v string) bool { return pattern == "" || strings.EqualFold(pattern, v) }

// closeness is the share of the fields p sets that l matches, in [0,1].
func (l Location) closeness(p Location) float64 {
	set, hit := 0, 0
	for _, x := range [][2]string{{p.Continent, l.Continent}, {p.Country, l.Country}, {p.Subdivision, l.Subdivision}, {p.City, l.City}} {
		if x[0] == "" {
			continue
		}
		set++
		if strings.EqualFold(x[0], x[1]) {
			hit++
		}
	}
	if set == 0 {
		return 0
	}
	return float64(hit) / float64(set)
}

// LocationRule is a hard location constraint: when Accept is not empty the
// machine must match one of its patterns; it must match none of Reject.
type LocationRule struct {
	Accept []Location `json:"accept,omitempty" yaml:"accept,omitempty"`
	Reject []Location `json:"reject,omitempty" yaml:"reject,omitempty"`
}

// Allows reports whether a machine at l satisfies the rule. A pattern
// naming a subdivision rejects only machines that state that subdivision,
// and accepts only those.
func (r LocationRule) Allows(l Location) bool { return locationRefusal(l, r) == "" }

// Window is a span of time; a zero Start or End leaves that side open.
type Window struct {
	Start time.Time `json:"start,omitzero" yaml:"start,omitempty"`
	End   time.Time `json:"end,omitzero" yaml:"end,omitempty"`
}

// IsZero reports whether both sides are open (always).
func (w Window) IsZero() bool { return w.Start.IsZero() && w.End.IsZero() }

// Contains reports whether o lies within w. An open side of o is only
// contained by an open side of w.
func (w Window) Contains(o Window) bool {
	if !w.Start.IsZero() && (o.Start.IsZero() || o.Start.Before(w.Start)) {
		return false
	}
	if !w.End.IsZero() && (o.End.IsZero() || o.End.After(w.End)) {
		return false
	}
	return true
}

// coverage is the share of the bounded window o that w overlaps, in [0,1].
func (w Window) coverage(o Window) float64 {
	total := o.End.Sub(o.Start)
	if total <= 0 {
		return 0
	}
	start, end := o.Start, o.End
	if !w.Start.IsZero() && w.Start.After(start) {
		start = w.Start
	}
	if !w.End.IsZero() && w.End.Before(end) {
		end = w.End
	}
	if !end.After(start) {
		return 0
	}
	return float64(end.Sub(start)) / float64(total)
}

// String is "2026-01-02T15:04:05Z..2026-01-02T17:00:00Z", ".." marking an open side.
func (w Window) String() string {
	f := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	if w.IsZero() {
		return "always"
	}
	return f(w.Start) + ".." + f(w.End)
}

// Validate reports an End before Start.
func (w Window) Validate() error {
	if !w.Start.IsZero() && !w.End.IsZero() && w.End.Before(w.Start) {
		return fmt.Errorf("window %s: end before start", w)
	}
	return nil
}

// Performance is a machine's benchmark figures (see internal/resource). Zero
// means not measured, which scores as the worst value.
type Performance struct {
	CPUSingle     float64 `json:"cpu_single"`      // points of one core; 1000 = the reference machine
	CPUMulti      float64 `json:"cpu_multi"`       // points of all cores together
	MemoryMBps    float64 `json:"memory_mbps"`     // copy bandwidth, bytes read + written, MB/s
	DiskWriteMBps float64 `json:"disk_write_mbps"` // sequential write to the data directory, synced
	DiskReadMBps  float64 `json:"disk_read_mbps"`  // sequential read, page cache dropped
	FsyncP50      float64 `json:"fsync_p50_us"`    // median fsync latency, µs; lower is better
}

// Offer is what a provider puts forward for a request: what it has free and
// on which terms. A provider builds its own Offer to decide whether to bid;
// an orchestrator ranks the Offers carried by the bids it received.
type Offer struct {
	Free        Resources   `json:"free"`
	Executors   []string    `json:"executors"` // usable here: docker, vm, wasm
	Location    Location    `json:"location"`
	Price       Price       `json:"price"`
	Performance Performance `json:"performance"`
	Available   Window      `json:"available"` // when the provider takes work; zero: always
}

// Request is what one node of a deployment asks of a provider: the
// resources of its allocations added up, and the constraints and
// preferences of the ensemble.
type Request struct {
	Resources Resources    `json:"resources"`
	Executors []string     `json:"executors,omitempty"` // every one must be offered
	Location  LocationRule `json:"location"`
	MaxPrice  Money        `json:"max_price,omitempty"` // per hour for Resources; 0: no limit
	// Window is when the work runs; it must lie within the offer's
	// Available window. A zero side is open: set Start to now for work
	// that starts now, else a provider available only from some time on
	// is never eligible.
	Window Window      `json:"window"`
	Prefer Preferences `json:"prefer"`
}

// Preferences are soft: they do not exclude an offer, they rank it.
type Preferences struct {
	Locations []Location `json:"locations,omitempty"` // nearer is better
	Window    Window     `json:"window"`              // more of it covered is better; both sides must be set
	Weights   Weights    `json:"weights"`             // zero value: DefaultWeights
}

// Weights says how much each part counts in Rating.Value. Only the ratio
// between them matters.
type Weights struct {
	Price       float64 `json:"price"`
	Performance float64 `json:"performance"`
	Location    float64 `json:"location"`
	Time        float64 `json:"time"`
}

// DefaultWeights applies when a request sets no weights.
var DefaultWeights = Weights{Price: 0.35, Performance: 0.35, Location: 0.2, Time: 0.1}

// Limits on the size of an offer or request, so that a hostile bid cannot make
// ranking slow.
const (
	MaxGPUs      = 1024
	MaxListItems = 256 // extra kinds, executors, locations
)

// Validate checks a request received from the network or a user: amounts
// not negative, windows in order, weights finite and not negative, lists of
// bounded size. It returns every problem found, joined.
func (r Request) Validate() error {
	var errs []error
	if err := r.Resources.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("resources: %w", err))
	}
	errs = append(errs, checkSizes(r.Resources, r.Executors, len(r.Location.Accept)+len(r.Location.Reject)+len(r.Prefer.Locations))...)
	if r.MaxPrice < 0 {
		errs = append(errs, fmt.Errorf("max_price %s: negative", r.MaxPrice))
	}
	if err := r.Window.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := r.Prefer.Window.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("prefer: %w", err))
	}
	w := r.Prefer.Weights
	for _, v := range []float64{w.Price, w.Performance, w.Location, w.Time} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("weights %+v: want finite values ≥ 0", w))
			break
		}
	}
	return errors.Join(errs...)
}

// Validate checks an offer received from the network: as Request.Validate,
// plus distinct GPU indices and a valid price.
func (o Offer) Validate() error {
	var errs []error
	if err := o.Free.ValidateDevices(); err != nil {
		errs = append(errs, fmt.Errorf("free: %w", err))
	}
	errs = append(errs, checkSizes(o.Free, o.Executors, 0)...)
	if err := o.Price.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := o.Available.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkSizes(r Resources, executors []string, locations int) []error {
	var errs []error
	if len(r.GPUs) > MaxGPUs {
		errs = append(errs, fmt.Errorf("gpus: %d, at most %d", len(r.GPUs), MaxGPUs))
	}
	if len(r.Extra) > MaxListItems {
		errs = append(errs, fmt.Errorf("extra: %d kinds, at most %d", len(r.Extra), MaxListItems))
	}
	if len(executors) > MaxListItems {
		errs = append(errs, fmt.Errorf("executors: %d, at most %d", len(executors), MaxListItems))
	}
	if locations > MaxListItems {
		errs = append(errs, fmt.Errorf("locations: %d, at most %d", locations, MaxListItems))
	}
	return errs
}
