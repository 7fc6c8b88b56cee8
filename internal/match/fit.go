package match

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dmsnet/dms/internal/mapkeys"
)

// Reason says why something does not fit or is not eligible, in one
// dimension. Need and Have are the amounts in human form when the dimension
// has amounts; Message is the sentence shown to people.
type Reason struct {
	Dimension string `json:"dimension"`
	Need      string `json:"need,omitempty"`
	Have      string `json:"have,omitempty"`
	Message   string `json:"message"`
}

// String is "ram: need 4GiB, have 2GiB free".
func (r Reason) String() string { return r.Dimension + ": " + r.Message }

// Fit is the result of Compare: it fits when Reasons is empty.
type Fit struct {
	// Reasons lists, per dimension that falls short, why (cpu, ram, disk,
	// gpu, then extra kinds in name order).
	Reasons []Reason `json:"reasons,omitempty"`
	// GPUs holds, when it fits, the Index of the device assigned to each
	// wanted GPU, in the order of the requirement. No device is assigned twice.
	GPUs []int `json:"gpus,omitempty"`
}

// OK reports whether it fits.
func (f Fit) OK() bool { return len(f.Reasons) == 0 }

// String is "fits" or the reasons joined by "; ".
func (f Fit) String() string {
	if f.OK() {
		return "fits"
	}
	return joinReasons(f.Reasons)
}

// Err is nil when it fits, else a *NoFitError holding the reasons.
func (f Fit) Err() error {
	if f.OK() {
		return nil
	}
	return &NoFitError{Reasons: f.Reasons}
}

// ErrNoFit is wrapped by every NoFitError.
var ErrNoFit = errors.New("does not fit")

// NoFitError is returned when a requirement does not fit or an offer is not
// eligible; Reasons says why, per dimension.
type NoFitError struct {
	Reasons []Reason
}

func (e *NoFitError) Error() string { return "does not fit: " + joinReasons(e.Reasons) }

// Unwrap makes errors.Is(err, ErrNoFit) true.
func (e *NoFitError) Unwrap() error { return ErrNoFit }

func joinReasons(rs []Reason) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, "; ")
}

// Compare tells whether want fits in have, where have is what is free (a
// provider's free resources) and want is what is asked. An exact fit is a
// fit; a zero requirement fits anything. Wanted GPUs are matched to distinct
// devices of have by vendor, model and minimum VRAM, preferring the smallest
// device that qualifies; the matching is maximal, so a fit is found whenever
// one exists.
func Compare(have, want Resources) Fit {
	var f Fit
	short := func(dim, need, has string) {
		f.Reasons = append(f.Reasons, Reason{Dimension: dim, Need: need, Have: has,
			Message: fmt.Sprintf("need %s, have %s free", need, has)})
	}
	if want.CPU > have.CPU {
		short(DimCPU, want.CPU.String(), have.CPU.String())
	}
	if want.RAM > have.RAM {
		short(DimRAM, want.RAM.String(), have.RAM.String())
	}
	if want.Disk > have.Disk {
		short(DimDisk, want.Disk.String(), have.Disk.String())
	}
	if len(want.GPUs) > 0 {
		assign, n := matchGPUs(have.GPUs, want.GPUs)
		if n < len(want.GPUs) {
			f.Reasons = append(f.Reasons, gpuReason(have.GPUs, want.GPUs, n))
		} else {
			f.GPUs = make([]int, len(assign))
			for i, j := range assign {
				f.GPUs[i] = have.GPUs[j].Index
			}
		}
	}
	for _, k := range mapkeys.Sorted(want.Extra) {
		if w, h := want.Extra[k], have.Extra[k]; w > h {
			short(k, strconv.FormatInt(w, 10), strconv.FormatInt(h, 10))
		}
	}
	if !f.OK() {
		f.GPUs = nil
	}
	return f
}

// Assign returns the resources to take from have to satisfy want: want
// itself, with each wanted GPU replaced by the device assigned to it (its
// Index, Vendor, Model and full VRAM), ready for have.Sub. It fails with a
// *NoFitError when want does not fit.
func Assign(have, want Resources) (Resources, error) {
	f := Compare(have, want)
	if err := f.Err(); err != nil {
		return Resources{}, err
	}
	out := want
	out.GPUs = nil
	if len(f.GPUs) > 0 {
		out.GPUs = make([]GPU, len(f.GPUs))
		for i, idx := range f.GPUs {
			j := slices.IndexFunc(have.GPUs, func(g GPU) bool { return g.Index == idx })
			out.GPUs[i] = have.GPUs[j]
		}
	}
	out.Extra = maps.Clone(want.Extra)
	return out, nil
}

// gpuMatches reports whether device h satisfies requirement w.
func gpuMatches(h, w GPU) bool {
	if w.Vendor != "" && !strings.EqualFold(h.Vendor, w.Vendor) {
		return false
	}
	if w.Model != "" && !strings.Contains(strings.ToLower(h.Model), strings.ToLower(w.Model)) {
		return false
	}
	return h.VRAM >= w.VRAM
}

// matchGPUs finds a maximum matching of wanted GPUs to distinct devices
// (Kuhn's augmenting paths). assign[i] is the position in have of the device
// given to want[i], or -1; n is how many wants were matched. The most
// demanding wants are placed first and each tries the smallest qualifying
// device first, so the result is deterministic and leaves big devices free.
func matchGPUs(have, want []GPU) (assign []int, n int) {
	assign = make([]int, len(want))
	for i := range assign {
		assign[i] = -1
	}
	if len(want) > len(have) {
		// Cannot all fit; still count how many could, for the reason, but
		// only over as many wants as there are devices.
		sub, m := matchGPUs(have, want[:len(have)])
		copy(assign, sub)
		return assign, m
	}
	cand := make([][]int, len(want))
	for i, w := range want {
		for j, h := range have {
			if gpuMatches(h, w) {
				cand[i] = append(cand[i], j)
			}
		}
		sort.SliceStable(cand[i], func(a, b int) bool {
			ha, hb := have[cand[i][a]], have[cand[i][b]]
			if ha.VRAM != hb.VRAM {
				return ha.VRAM < hb.VRAM
			}
			return ha.Index < hb.Index
		})
	}
	order := make([]int, len(want))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		wa, wb := want[order[a]], want[order[b]]
		if len(cand[order[a]]) != len(cand[order[b]]) {
			return len(cand[order[a]]) < len(cand[order[b]])
		}
		return wa.VRAM > wb.VRAM
	})
	owner := make([]int, len(have))
	for j := range owner {
		owner[j] = -1
	}
	seen := make([]bool, len(have))
	var try func(w int) bool
	try = func(w int) bool {
		for _, j := range cand[w] {
			if seen[j] {
				continue
			}
			seen[j] = true
			if owner[j] < 0 || try(owner[j]) {
				owner[j] = w
				return true
			}
		}
		return false
	}
	for _, w := range order {
		clear(seen)
		if try(w) {
			n++
		}
	}
	for j, w := range owner {
		if w >= 0 {
			assign[w] = j
		}
	}
	return assign, n
}

func gpuReason(have, want []GPU, matched int) Reason {
	ws := make([]string, len(want))
	for i, w := range want {
		ws[i] = w.wantString()
	}
	hs := make([]string, len(have))
	for i, h := range have {
		hs[i] = h.String()
	}
	need := strings.Join(ws, ", ")
	has := strings.Join(hs, ", ")
	var msg string
	switch {
	case len(have) == 0:
		has = "none"
		msg = fmt.Sprintf("need %s (%s), have none free", plural(len(want), "GPU"), need)
	default:
		msg = fmt.Sprintf("need %s (%s), only %d of %s free match (%s)",
			plural(len(want), "GPU"), need, matched, plural(len(have), "GPU"), has)
	}
	return Reason{Dimension: DimGPU, Need: need, Have: has, Message: msg}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
