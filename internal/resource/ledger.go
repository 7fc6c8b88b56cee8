package resource

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/match"
)

// Errors returned by Ledger methods (wrapped with context).
var (
	// ErrNotOnboarded: the machine has nothing onboarded.
	ErrNotOnboarded = errors.New("not onboarded")
	// ErrNotFound: no allocation or live reservation has that id (a
	// reservation that expired is gone).
	ErrNotFound = errors.New("not found")
	// ErrExists: an allocation or live reservation already has that id.
	ErrExists = errors.New("already exists")
	// ErrBusy: Offboard while allocations hold resources.
	ErrBusy = errors.New("allocations still hold resources")
	// ErrInvalid: a malformed argument (empty id, ttl ≤ 0, negative amount).
	ErrInvalid = errors.New("invalid argument")
)

// OnboardError is returned by Onboard when the request asks for more than
// the machine has minus the reserve, or for less than what is allocated or
// reserved. Problems holds one reason per dimension; Need is what was asked,
// Have what is possible.
type OnboardError struct {
	Problems []match.Reason
}

// Error reads "onboard: ram 100TiB exceeds available 21.3GiB (machine
// 23.4GiB minus reserve 2GiB)".
func (e *OnboardError) Error() string {
	s := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		s[i] = p.Dimension + " " + p.Message
	}
	return "onboard: " + strings.Join(s, "; ")
}

// DefaultReserve is what a node keeps back for the host when config says
// nothing else: half a core, 1 GiB of RAM, 5 GiB of disk.
var DefaultReserve = match.Resources{CPU: 500, RAM: 1 << 30, Disk: 5 << 30}

// LedgerConfig holds what a Ledger needs. Machine is required.
type LedgerConfig struct {
	// Machine is what Detect found; its Resources are the capacity.
	Machine Machine
	// Reserve is kept back for the host and never onboarded (GPUs are not
	// reserved). The node passes its configured value, by default
	// DefaultReserve; the zero value reserves nothing.
	Reserve match.Resources
	// Persister keeps onboarding, allocations, reservations and scores
	// across restarts; nil keeps them in memory only.
	Persister Persister
	// Now is the clock reservations expire by; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Onboarding is what the owner dedicated to the network.
type Onboarding struct {
	Resources match.Resources `json:"resources"`
	Price     match.Price     `json:"price"`
	Since     time.Time       `json:"since"`   // first onboarded
	Updated   time.Time       `json:"updated"` // last changed
}

// OnboardRequest dedicates resources. On the first onboarding a field left
// nil is zero; when already onboarded, a nil field keeps its current value
// (so `dms onboard --ram 4GiB` changes only the RAM). GPUs points to the full
// list of dedicated cards: Index as Machine.GPUs numbers them, VRAM the
// amount offered (0: all of it, at most all of it); an empty list removes
// every card.
type OnboardRequest struct {
	CPU   *match.MilliCPU `json:"cpu,omitempty"`
	RAM   *match.Bytes    `json:"ram,omitempty"`
	Disk  *match.Bytes    `json:"disk,omitempty"`
	GPUs  *[]match.GPU    `json:"gpus,omitempty"`
	Price *match.Price    `json:"price,omitempty"`
}

// Allocation is resources held by a running allocation.
type Allocation struct {
	ID        string          `json:"id"`
	Resources match.Resources `json:"resources"`
	Since     time.Time       `json:"since"`
}

// Reservation is resources held for a bid until it is committed, released,
// or expires.
type Reservation struct {
	ID        string          `json:"id"`
	Resources match.Resources `json:"resources"`
	Created   time.Time       `json:"created"`
	Expires   time.Time       `json:"expires"`
}

// Bid is the provider's answer to a request it can serve: its rating of its
// own offer and the reservation that holds the resources.
type Bid struct {
	Rating      match.Rating `json:"rating"`
	Reservation Reservation  `json:"reservation"`
}

// Snapshot is the whole accounting at one instant, ready for JSON (`dms
// resources -o json`).
type Snapshot struct {
	Time     time.Time       `json:"time"`
	Machine  Machine         `json:"machine"`
	Capacity match.Resources `json:"capacity"` // Machine.Resources()
	Reserve  match.Resources `json:"reserve"`  // kept back for the host
	// Available is capacity minus reserve: the most Onboard accepts.
	Available    match.Resources `json:"available"`
	Onboarded    *Onboarding     `json:"onboarded"` // null when not onboarded
	Allocated    match.Resources `json:"allocated"`
	Reserved     match.Resources `json:"reserved"`
	Free         match.Resources `json:"free"` // onboarded − allocated − reserved
	Allocations  []Allocation    `json:"allocations"`
	Reservations []Reservation   `json:"reservations"`
	Benchmark    *Scores         `json:"benchmark"` // null before the first run
}

// stateVersion is the version of the persisted document.
const stateVersion = 1

// state is what is persisted, as one JSON document.
type state struct {
	Version      int                    `json:"version"`
	Onboarded    *Onboarding            `json:"onboarded,omitempty"`
	Allocations  map[string]Allocation  `json:"allocations,omitempty"`
	Reservations map[string]Reservation `json:"reservations,omitempty"`
	Scores       *Scores                `json:"scores,omitempty"`
}

// Ledger keeps the resource accounting of this machine: what the owner
// onboarded, what allocations hold, what bids have reserved, what is free.
// Free is onboarded − allocated − reserved, and never negative: Reserve and
// Allocate refuse what does not fit, and Onboard refuses to go below what is
// held. Every change is persisted before the method returns; if persisting
// fails the change is undone and the error returned.
//
// Reservations expire at their deadline by the injected clock; expiry is
// applied at the start of every method, so an expired reservation frees its
// resources without any goroutine or timer.
//
// A Ledger is safe for concurrent use.
type Ledger struct {
	now     func() time.Time
	log     *slog.Logger
	persist Persister
	reserve match.Resources

	mu      sync.Mutex
	machine Machine // guarded by mu
	st      state   // guarded by mu
}

// NewLedger restores the accounting from cfg.Persister (dropping
// reservations that expired meanwhile: they never become allocations) and
// returns the Ledger. A document it cannot read is an error, never silently
// replaced.
func NewLedger(cfg LedgerConfig) (*Ledger, error) {
	if err := cfg.Reserve.Validate(); err != nil {
		return nil, fmt.Errorf("resource reserve: %w", err)
	}
	m := &Ledger{now: cfg.Now, log: cfg.Logger, persist: cfg.Persister, reserve: cfg.Reserve, machine: cfg.Machine}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.st = state{Version: stateVersion, Allocations: map[string]Allocation{}, Reservations: map[string]Reservation{}}
	if m.persist == nil {
		return m, nil
	}
	data, err := m.persist.Load()
	if err != nil && !isNotExist(err) {
		return nil, fmt.Errorf("load resources: %w", err)
	}
	if len(data) == 0 {
		return m, nil
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("load resources: %w", err)
	}
	if st.Version > stateVersion {
		return nil, fmt.Errorf("load resources: version %d written by a newer dms (this one knows %d)", st.Version, stateVersion)
	}
	st.Version = stateVersion
	if st.Allocations == nil {
		st.Allocations = map[string]Allocation{}
	}
	if st.Reservations == nil {
		st.Reservations = map[string]Reservation{}
	}
	m.st = st
	now := m.now()
	m.mu.Lock()
	m.expireLocked(now)
	if st.Onboarded != nil {
		if f := match.Compare(m.availableLocked(), st.Onboarded.Resources); !f.OK() {
			m.log.Warn("onboarded resources exceed what this machine now has", "reasons", f.String())
		}
	}
	m.mu.Unlock()
	m.log.Info("resources restored", "onboarded", st.Onboarded != nil, "allocations", len(st.Allocations), "reservations", len(m.st.Reservations))
	return m, nil
}

// Onboard dedicates resources to the network, or changes the dedication in
// place. It refuses (with an *OnboardError saying how much is available)
// more than the machine has minus the reserve in any dimension, a GPU the
// machine does not have, and less than allocations and reservations hold.
func (m *Ledger) Onboard(req OnboardRequest) (Onboarding, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(now)

	var next Onboarding
	if cur := m.st.Onboarded; cur != nil {
		next = *cur
		next.Resources.GPUs = slices.Clone(cur.Resources.GPUs)
	} else {
		next.Since = now
	}
	next.Updated = now
	if req.CPU != nil {
		next.Resources.CPU = *req.CPU
	}
	if req.RAM != nil {
		next.Resources.RAM = *req.RAM
	}
	if req.Disk != nil {
		next.Resources.Disk = *req.Disk
	}
	if req.Price != nil {
		if err := req.Price.Validate(); err != nil {
			return Onboarding{}, fmt.Errorf("onboard: %w", err)
		}
		next.Price = *req.Price
	}
	var problems []match.Reason
	if req.GPUs != nil {
		gpus, ps := m.onboardGPUsLocked(*req.GPUs)
		next.Resources.GPUs = gpus
		problems = append(problems, ps...)
	}
	if err := next.Resources.Validate(); err != nil {
		return Onboarding{}, fmt.Errorf("onboard: %w: %w", ErrInvalid, err)
	}
	if next.Resources.IsZero() && len(problems) == 0 {
		return Onboarding{}, fmt.Errorf("onboard: %w: nothing to onboard (give --cpu, --ram, --disk or --gpu; to stop, offboard)", ErrInvalid)
	}

	capacity := m.machine.Resources()
	avail := m.availableLocked()
	exceeds := func(dim string, asked, has, mach, res string) {
		problems = append(problems, match.Reason{Dimension: dim, Need: asked, Have: has,
			Message: fmt.Sprintf("%s exceeds available %s (machine %s minus reserve %s)", asked, has, mach, res)})
	}
	r := next.Resources
	if r.CPU > avail.CPU {
		exceeds(match.DimCPU, r.CPU.String(), avail.CPU.String(), capacity.CPU.String(), m.reserve.CPU.String())
	}
	if r.RAM > avail.RAM {
		exceeds(match.DimRAM, r.RAM.String(), avail.RAM.String(), capacity.RAM.String(), m.reserve.RAM.String())
	}
	if r.Disk > avail.Disk {
		exceeds(match.DimDisk, r.Disk.String(), avail.Disk.String(), capacity.Disk.String(), m.reserve.Disk.String())
	}
	for _, k := range slices.Sorted(maps.Keys(r.Extra)) {
		if r.Extra[k] > 0 {
			problems = append(problems, match.Reason{Dimension: k, Message: "is not a kind of resource this machine has"})
		}
	}
	// Never below what is held.
	held := m.heldLocked()
	if r.CPU < held.CPU {
		problems = append(problems, belowHeld(match.DimCPU, r.CPU.String(), held.CPU.String()))
	}
	if r.RAM < held.RAM {
		problems = append(problems, belowHeld(match.DimRAM, r.RAM.String(), held.RAM.String()))
	}
	if r.Disk < held.Disk {
		problems = append(problems, belowHeld(match.DimDisk, r.Disk.String(), held.Disk.String()))
	}
	for _, g := range held.GPUs {
		if !slices.ContainsFunc(r.GPUs, func(x match.GPU) bool { return x.Index == g.Index }) {
			problems = append(problems, match.Reason{Dimension: match.DimGPU, Need: "without #" + fmt.Sprint(g.Index), Have: "#" + fmt.Sprint(g.Index) + " in use",
				Message: fmt.Sprintf("#%d is allocated or reserved and must stay onboarded", g.Index)})
		}
	}
	if len(problems) > 0 {
		return Onboarding{}, &OnboardError{Problems: problems}
	}
	prev := m.st.Onboarded
	m.st.Onboarded = &next
	if err := m.saveLocked(); err != nil {
		m.st.Onboarded = prev
		return Onboarding{}, err
	}
	m.log.Info("onboarded", "resources", next.Resources.String(), "price", next.Price.String())
	return next, nil
}

func belowHeld(dim, asked, held string) match.Reason {
	return match.Reason{Dimension: dim, Need: asked, Have: held,
		Message: fmt.Sprintf("%s is below the %s allocated or reserved", asked, held)}
}

// onboardGPUsLocked checks the requested cards against the machine's and
// fills in vendor, model and VRAM.
func (m *Ledger) onboardGPUsLocked(req []match.GPU) ([]match.GPU, []match.Reason) {
	var out []match.GPU
	var problems []match.Reason
	seen := map[int]bool{}
	for _, g := range req {
		if seen[g.Index] {
			problems = append(problems, match.Reason{Dimension: match.DimGPU, Need: fmt.Sprint(g.Index), Message: fmt.Sprintf("#%d listed twice", g.Index)})
			continue
		}
		seen[g.Index] = true
		dev, ok := m.machine.GPU(g.Index)
		if !ok {
			have := "none"
			if len(m.machine.GPUs) > 0 {
				var ids []string
				for _, d := range m.machine.GPUs {
					ids = append(ids, fmt.Sprintf("#%d %s %s", d.Index, d.Model, d.VRAM))
				}
				have = strings.Join(ids, ", ")
			}
			problems = append(problems, match.Reason{Dimension: match.DimGPU, Need: fmt.Sprint(g.Index), Have: have,
				Message: fmt.Sprintf("#%d not found (machine has %s)", g.Index, have)})
			continue
		}
		d := dev.GPU
		if g.VRAM > d.VRAM {
			problems = append(problems, match.Reason{Dimension: match.DimGPU, Need: g.VRAM.String(), Have: d.VRAM.String(),
				Message: fmt.Sprintf("#%d VRAM %s exceeds its %s", g.Index, g.VRAM, d.VRAM)})
			continue
		}
		if g.VRAM > 0 {
			d.VRAM = g.VRAM
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, problems
}

// Offboard withdraws everything from the network. It refuses with ErrBusy
// while allocations hold resources (stop and Release them first: the node's
// `offboard --force` does that); pending reservations are dropped, so the bids
// they back fail at commit. Offboarding when not onboarded returns
// ErrNotOnboarded.
func (m *Ledger) Offboard() error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(now)
	if m.st.Onboarded == nil {
		return fmt.Errorf("offboard: %w", ErrNotOnboarded)
	}
	if n := len(m.st.Allocations); n > 0 {
		ids := slices.Sorted(maps.Keys(m.st.Allocations))
		if len(ids) > 5 {
			ids = append(ids[:5], "…")
		}
		return fmt.Errorf("offboard: %w: %d allocation(s) (%s)", ErrBusy, n, strings.Join(ids, ", "))
	}
	prevOn, prevRes := m.st.Onboarded, m.st.Reservations
	m.st.Onboarded, m.st.Reservations = nil, map[string]Reservation{}
	if err := m.saveLocked(); err != nil {
		m.st.Onboarded, m.st.Reservations = prevOn, prevRes
		return err
	}
	m.log.Info("offboarded")
	return nil
}

// Reserve holds want for a bid until Commit, Release, or ttl passes. GPUs
// are assigned to distinct free devices; the returned Reservation holds the
// concrete resources. It fails with a *match.NoFitError (errors.Is
// match.ErrNoFit) saying what is short, ErrExists, ErrNotOnboarded or
// ErrInvalid.
func (m *Ledger) Reserve(id string, want match.Resources, ttl time.Duration) (Reservation, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(now)
	return m.reserveLocked(now, id, want, ttl)
}

func (m *Ledger) reserveLocked(now time.Time, id string, want match.Resources, ttl time.Duration) (Reservation, error) {
	if ttl <= 0 {
		return Reservation{}, fmt.Errorf("reserve %s: %w: ttl %s", id, ErrInvalid, ttl)
	}
	take, err := m.takeLocked(id, want)
	if err != nil {
		return Reservation{}, fmt.Errorf("reserve %s: %w", id, err)
	}
	r := Reservation{ID: id, Resources: take, Created: now, Expires: now.Add(ttl)}
	m.st.Reservations[id] = r
	if err := m.saveLocked(); err != nil {
		delete(m.st.Reservations, id)
		return Reservation{}, fmt.Errorf("reserve %s: %w", id, err)
	}
	return r, nil
}

// takeLocked checks id and want and returns the concrete resources to take
// from what is free.
func (m *Ledger) takeLocked(id string, want match.Resources) (match.Resources, error) {
	if id == "" {
		return match.Resources{}, fmt.Errorf("%w: empty id", ErrInvalid)
	}
	if err := want.Validate(); err != nil {
		return match.Resources{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if m.st.Onboarded == nil {
		return match.Resources{}, ErrNotOnboarded
	}
	if _, ok := m.st.Allocations[id]; ok {
		return match.Resources{}, fmt.Errorf("allocation %w", ErrExists)
	}
	if _, ok := m.st.Reservations[id]; ok {
		return match.Resources{}, fmt.Errorf("reservation %w", ErrExists)
	}
	return match.Assign(m.freeLocked(), want)
}

// Bid is the provider's bid decision in one step: it scores this machine's
// Offer against req (match.Score) and, when eligible, reserves the resources
// for ttl under id. When not eligible it returns the rating and a
// *match.NoFitError with the reasons. Scoring and reserving happen under one
// lock, so two bids cannot both count the same free resources.
func (m *Ledger) Bid(id string, req match.Request, ttl time.Duration) (Bid, error) {
	if err := req.Validate(); err != nil {
		return Bid{}, fmt.Errorf("bid %s: %w: %w", id, ErrInvalid, err)
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(now)
	if m.st.Onboarded == nil {
		return Bid{}, fmt.Errorf("bid %s: %w", id, ErrNotOnboarded)
	}
	rating := match.Score(m.offerLocked(), req)
	if !rating.Eligible {
		return Bid{Rating: rating}, fmt.Errorf("bid %s: %w", id, &match.NoFitError{Reasons: rating.Reasons})
	}
	r, err := m.reserveLocked(now, id, req.Resources, ttl)
	if err != nil {
		return Bid{Rating: rating}, err
	}
	return Bid{Rating: rating, Reservation: r}, nil
}

// Commit turns a live reservation into an allocation. Committing an id that
// is already an allocation returns it (a retried commit succeeds); an
// unknown or expired reservation gives ErrNotFound.
func (m *Ledger) Commit(id string) (Allocation, error) { return m.commit(id, nil) }

// CommitPart is Commit for part of a reservation: the allocation holds
// want, which must fit within what the reservation held, and the rest is
// released. A provider reserves once for the nodes of a request it could
// host (any one of them), and commits the node it was given.
func (m *Ledger) CommitPart(id string, want match.Resources) (Allocation, error) {
	return m.commit(id, &want)
}

// commit commits reservation id, all of it or (want not nil) part of it.
func (m *Ledger) commit(id string, want *match.Resources) (Allocation, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(now)
	if a, ok := m.st.Allocations[id]; ok {
		return a, nil
	}
	r, ok := m.st.Reservations[id]
	if !ok {
		return Allocation{}, fmt.Errorf("commit %s: reservation %w (unknown or expired)", id, ErrNotFound)
	}
	take := r.Resources
	if want != nil {
		part, err := match.Assign(r.Resources, *want)
		if err != nil {
			return Allocation{}, fmt.Errorf("commit %s: more than reserved: %w", id, err)
		}
		take = part
	}
	a := Allocation{ID: id, Resources: take, Since: now}
	delete(m.st.Reservations, id)
	m.st.Allocations[id] = a
	if err := m.saveLocked(); err != nil {
		delete(m.st.Allocations, id)
		m.st.Reservations[id] = r
		return Allocation{}, fmt.Errorf("commit %s: %w", id, err)
	}
	return a, nil
}

// Allocate takes want for an allocation directly, without a reservation
// (for example a deployment pinned to this node). Errors as Reserve.
func (m *Ledger) Allocate(id string, want match.Resources) (Allocation, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(now)
	take, err := m.takeLocked(id, want)
	if err != nil {
		return Allocation{}, fmt.Errorf("allocate %s: %w", id, err)
	}
	a := Allocation{ID: id, Resources: take, Since: now}
	m.st.Allocations[id] = a
	if err := m.saveLocked(); err != nil {
		delete(m.st.Allocations, id)
		return Allocation{}, fmt.Errorf("allocate %s: %w", id, err)
	}
	return a, nil
}

// Release frees what the allocation or reservation id holds. An unknown id
// gives ErrNotFound, which a caller undoing a bid may ignore.
func (m *Ledger) Release(id string) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(now)
	if a, ok := m.st.Allocations[id]; ok {
		delete(m.st.Allocations, id)
		if err := m.saveLocked(); err != nil {
			m.st.Allocations[id] = a
			return fmt.Errorf("release %s: %w", id, err)
		}
		return nil
	}
	if r, ok := m.st.Reservations[id]; ok {
		delete(m.st.Reservations, id)
		if err := m.saveLocked(); err != nil {
			m.st.Reservations[id] = r
			return fmt.Errorf("release %s: %w", id, err)
		}
		return nil
	}
	return &idError{op: "release", id: id, err: ErrNotFound}
}

// idError is what fmt.Errorf("op id: %w", err) would return, without its
// formatting: a provider's release of a round's unused reservation finds
// it released already (by the allocation manager's revert) at every
// provider of a broadcast round, and the formatting (and the stack it
// grew) was most of that call.
type idError struct {
	op, id string
	err    error
}

func (e *idError) Error() string { return e.op + " " + e.id + ": " + e.err.Error() }
func (e *idError) Unwrap() error { return e.err }

// Free is what can still be reserved: onboarded − allocated − reserved;
// zero when not onboarded.
func (m *Ledger) Free() match.Resources {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(now)
	return m.freeLocked()
}

// Onboarded returns the current onboarding, and false when not onboarded.
func (m *Ledger) Onboarded() (Onboarding, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.Onboarded == nil {
		return Onboarding{}, false
	}
	return *m.st.Onboarded, true
}

// Offer is this machine's offer as match sees it: free resources, usable
// executors, location, onboarded price and benchmark figures.
func (m *Ledger) Offer() match.Offer {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(now)
	return m.offerLocked()
}

func (m *Ledger) offerLocked() match.Offer {
	o := match.Offer{
		Free:      m.freeLocked(),
		Executors: slices.Clone(m.machine.Executors),
		Location:  m.machine.Location,
	}
	if m.st.Onboarded != nil {
		o.Price = m.st.Onboarded.Price
	}
	if m.st.Scores != nil {
		o.Performance = m.st.Scores.Performance
	}
	return o
}

// SetScores records a benchmark run (persisted; shown by Snapshot and used
// in Offer).
func (m *Ledger) SetScores(s Scores) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := m.st.Scores
	m.st.Scores = &s
	if err := m.saveLocked(); err != nil {
		m.st.Scores = prev
		return fmt.Errorf("save benchmark scores: %w", err)
	}
	return nil
}

// Scores returns the last benchmark run, and false when there was none.
func (m *Ledger) Scores() (Scores, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.Scores == nil {
		return Scores{}, false
	}
	return *m.st.Scores, true
}

// SetMachine replaces the detected machine (after a new Detect). The
// onboarding is kept even if the machine shrank; Onboard checks the new
// capacity from then on.
func (m *Ledger) SetMachine(mach Machine) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.machine = mach
}

// Machine returns the detected machine.
func (m *Ledger) Machine() Machine {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.machine
}

// Snapshot returns the whole accounting at this instant.
func (m *Ledger) Snapshot() Snapshot {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(now)
	s := Snapshot{
		Time:         now,
		Machine:      m.machine,
		Capacity:     m.machine.Resources(),
		Reserve:      m.reserve,
		Available:    m.availableLocked(),
		Free:         m.freeLocked(),
		Allocations:  []Allocation{},
		Reservations: []Reservation{},
	}
	if m.st.Onboarded != nil {
		o := *m.st.Onboarded
		s.Onboarded = &o
	}
	if m.st.Scores != nil {
		sc := *m.st.Scores
		s.Benchmark = &sc
	}
	for _, id := range slices.Sorted(maps.Keys(m.st.Allocations)) {
		a := m.st.Allocations[id]
		s.Allocations = append(s.Allocations, a)
		s.Allocated = m.sumLocked(s.Allocated, a.Resources)
	}
	for _, id := range slices.Sorted(maps.Keys(m.st.Reservations)) {
		r := m.st.Reservations[id]
		s.Reservations = append(s.Reservations, r)
		s.Reserved = m.sumLocked(s.Reserved, r.Resources)
	}
	return s
}

// expireLocked drops the reservations whose deadline has passed. Nothing is
// saved: a restart drops them too.
func (m *Ledger) expireLocked(now time.Time) {
	for id, r := range m.st.Reservations {
		if !now.Before(r.Expires) {
			delete(m.st.Reservations, id)
			m.log.Debug("reservation expired", "reservation_id", id)
		}
	}
}

// heldLocked is allocated + reserved.
func (m *Ledger) heldLocked() match.Resources {
	var held match.Resources
	for _, a := range m.st.Allocations {
		held = m.sumLocked(held, a.Resources)
	}
	for _, r := range m.st.Reservations {
		held = m.sumLocked(held, r.Resources)
	}
	return held
}

func (m *Ledger) sumLocked(a, b match.Resources) match.Resources {
	s, err := a.Add(b)
	if err != nil {
		// Each part was taken from a finite onboarding: unreachable
		// unless the persisted document was edited by hand.
		m.log.Error("resource accounting overflow", "err", err)
		return a
	}
	return s
}

// freeLocked is onboarded − held, clamped at zero per dimension should the
// books not balance (a hand-edited document); that is logged.
func (m *Ledger) freeLocked() match.Resources {
	if m.st.Onboarded == nil {
		return match.Resources{}
	}
	held := m.heldLocked()
	free, err := m.st.Onboarded.Resources.Sub(held)
	if err != nil {
		m.log.Error("resources held exceed those onboarded", "err", err)
		return clampSub(m.st.Onboarded.Resources, held)
	}
	return free
}

// availableLocked is capacity − reserve, clamped at zero.
func (m *Ledger) availableLocked() match.Resources {
	return clampSub(m.machine.Resources(), m.reserve)
}

// clampSub is a − b per dimension, never below zero; b's GPUs are removed
// from a's where present.
func clampSub(a, b match.Resources) match.Resources {
	out := match.Resources{CPU: max(a.CPU-b.CPU, 0)}
	if a.RAM > b.RAM {
		out.RAM = a.RAM - b.RAM
	}
	if a.Disk > b.Disk {
		out.Disk = a.Disk - b.Disk
	}
	for _, g := range a.GPUs {
		if !slices.ContainsFunc(b.GPUs, func(x match.GPU) bool { return x.Index == g.Index }) {
			out.GPUs = append(out.GPUs, g)
		}
	}
	for k, v := range a.Extra {
		if d := v - b.Extra[k]; d > 0 {
			if out.Extra == nil {
				out.Extra = map[string]int64{}
			}
			out.Extra[k] = d
		}
	}
	return out
}

func (m *Ledger) saveLocked() error {
	if m.persist == nil {
		return nil
	}
	data, err := json.Marshal(m.st)
	if err != nil {
		return fmt.Errorf("encode resources: %w", err)
	}
	if err := m.persist.Save(data); err != nil {
		return fmt.Errorf("persist resources: %w", err)
	}
	return nil
}

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist)
}
