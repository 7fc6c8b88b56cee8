package match

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dmsnet/dms/internal/mapkeys"
)

// Dimension names, used in reasons and errors. An extra kind of resource is
// named by its own key in Resources.Extra.
const (
	DimCPU      = "cpu"
	DimRAM      = "ram"
	DimDisk     = "disk"
	DimGPU      = "gpu"
	DimExecutor = "executor"
	DimLocation = "location"
	DimPrice    = "price"
	DimTime     = "time"
)

// GPU is one graphics card. In a machine's or a provider's resources it is a
// device, named by its Index (as nvidia-smi or rocm-smi number it) and VRAM is
// its memory. In a requirement it is what one wanted GPU must offer: Index is
// ignored, an empty Vendor or Model accepts any, VRAM is a minimum.
type GPU struct {
	Index  int    `json:"index" yaml:"index,omitempty"`
	Vendor string `json:"vendor,omitempty" yaml:"vendor,omitempty"` // nvidia, amd, intel
	Model  string `json:"model,omitempty" yaml:"model,omitempty"`   // in a requirement: a case-insensitive substring
	VRAM   Bytes  `json:"vram" yaml:"vram,omitempty"`
}

// String describes the GPU: "#0 nvidia Tesla T4 15GiB", or for a wanted GPU
// "nvidia ≥16GiB".
func (g GPU) String() string {
	var b strings.Builder
	b.WriteString("#")
	b.WriteString(strconv.Itoa(g.Index))
	if g.Vendor != "" {
		b.WriteString(" " + g.Vendor)
	}
	if g.Model != "" {
		b.WriteString(" " + g.Model)
	}
	b.WriteString(" " + g.VRAM.String())
	return b.String()
}

// wantString describes a GPU requirement: "nvidia A100 ≥40GiB", "any GPU".
func (g GPU) wantString() string {
	var parts []string
	if g.Vendor != "" {
		parts = append(parts, g.Vendor)
	}
	if g.Model != "" {
		parts = append(parts, g.Model)
	}
	if g.VRAM > 0 {
		parts = append(parts, "≥"+g.VRAM.String())
	}
	if len(parts) == 0 {
		return "any GPU"
	}
	return strings.Join(parts, " ")
}

// Resources is an amount of every kind of resource: a machine's capacity, what
// a provider onboarded or has free, what an allocation asks for.
//
// CPU, RAM and Disk are divisible amounts. GPUs are whole devices (see GPU).
// Extra holds further countable kinds (for example "fpga": 1); a missing key
// is zero. The zero value is "nothing" and fits everywhere.
type Resources struct {
	CPU   MilliCPU         `json:"cpu" yaml:"cpu,omitempty"`
	RAM   Bytes            `json:"ram" yaml:"ram,omitempty"`
	Disk  Bytes            `json:"disk" yaml:"disk,omitempty"`
	GPUs  []GPU            `json:"gpus,omitempty" yaml:"gpus,omitempty"`
	Extra map[string]int64 `json:"extra,omitempty" yaml:"extra,omitempty"`
}

// ErrNegative is wrapped by the AmountError of a subtraction that would go
// below zero, and of any operation given a negative amount.
var ErrNegative = errors.New("would be negative")

// ErrOverflow is wrapped by the AmountError of an addition whose result does
// not fit in the dimension's type.
var ErrOverflow = errors.New("overflows")

// AmountError says in which dimension an addition or subtraction failed and
// with which amounts. Err is ErrNegative or ErrOverflow.
type AmountError struct {
	Op        string // "add" or "subtract"
	Dimension string // DimCPU, DimRAM, DimDisk, DimGPU or an extra kind
	A, B      string // the operands in human form (A - B, A + B)
	Err       error
}

func (e *AmountError) Error() string {
	switch {
	case e.Op == "subtract" && e.Dimension == DimGPU:
		return fmt.Sprintf("subtract gpu: %s not among %s", e.B, e.A)
	case e.Op == "subtract" && errors.Is(e.Err, ErrNegative) && e.B != "":
		return fmt.Sprintf("subtract %s: %s from %s %v", e.Dimension, e.B, e.A, e.Err)
	case errors.Is(e.Err, ErrNegative):
		return fmt.Sprintf("%s %s: negative amount %s", e.Op, e.Dimension, e.A)
	}
	return fmt.Sprintf("%s %s: %s + %s %v", e.Op, e.Dimension, e.A, e.B, e.Err)
}

func (e *AmountError) Unwrap() error { return e.Err }

// Add returns r + o. GPUs are concatenated (r's, then o's); Extra kinds are
// summed. It fails with an *AmountError when an operand is negative or a sum
// overflows. Neither operand is modified.
func (r Resources) Add(o Resources) (Resources, error) {
	if err := r.checkNonNegative("add"); err != nil {
		return Resources{}, err
	}
	if err := o.checkNonNegative("add"); err != nil {
		return Resources{}, err
	}
	var out Resources
	if r.CPU > math.MaxInt64-o.CPU {
		return Resources{}, &AmountError{Op: "add", Dimension: DimCPU, A: r.CPU.String(), B: o.CPU.String(), Err: ErrOverflow}
	}
	out.CPU = r.CPU + o.CPU
	var ok bool
	if out.RAM, ok = addBytes(r.RAM, o.RAM); !ok {
		return Resources{}, &AmountError{Op: "add", Dimension: DimRAM, A: r.RAM.String(), B: o.RAM.String(), Err: ErrOverflow}
	}
	if out.Disk, ok = addBytes(r.Disk, o.Disk); !ok {
		return Resources{}, &AmountError{Op: "add", Dimension: DimDisk, A: r.Disk.String(), B: o.Disk.String(), Err: ErrOverflow}
	}
	if len(r.GPUs)+len(o.GPUs) > 0 {
		out.GPUs = make([]GPU, 0, len(r.GPUs)+len(o.GPUs))
		out.GPUs = append(append(out.GPUs, r.GPUs...), o.GPUs...)
	}
	for _, k := range extraKeys(r.Extra, o.Extra) {
		a, b := r.Extra[k], o.Extra[k]
		if a > math.MaxInt64-b {
			return Resources{}, &AmountError{Op: "add", Dimension: k, A: strconv.FormatInt(a, 10), B: strconv.FormatInt(b, 10), Err: ErrOverflow}
		}
		if a+b != 0 {
			if out.Extra == nil {
				out.Extra = map[string]int64{}
			}
			out.Extra[k] = a + b
		}
	}
	return out, nil
}

// Sub returns r - o. Each GPU of o is removed from r by Index. It fails with
// an *AmountError (wrapping ErrNegative) naming the first dimension, in the
// order cpu, ram, disk, gpu, extra kinds, where the result would be negative
// or where o holds a GPU that r does not. Neither operand is modified.
func (r Resources) Sub(o Resources) (Resources, error) {
	if err := r.checkNonNegative("subtract"); err != nil {
		return Resources{}, err
	}
	if err := o.checkNonNegative("subtract"); err != nil {
		return Resources{}, err
	}
	neg := func(dim, a, b string) error {
		return &AmountError{Op: "subtract", Dimension: dim, A: a, B: b, Err: ErrNegative}
	}
	var out Resources
	if o.CPU > r.CPU {
		return Resources{}, neg(DimCPU, r.CPU.String(), o.CPU.String())
	}
	out.CPU = r.CPU - o.CPU
	if o.RAM > r.RAM {
		return Resources{}, neg(DimRAM, r.RAM.String(), o.RAM.String())
	}
	out.RAM = r.RAM - o.RAM
	if o.Disk > r.Disk {
		return Resources{}, neg(DimDisk, r.Disk.String(), o.Disk.String())
	}
	out.Disk = r.Disk - o.Disk
	if len(r.GPUs) > 0 {
		out.GPUs = slices.Clone(r.GPUs)
	}
	for _, g := range o.GPUs {
		i := slices.IndexFunc(out.GPUs, func(h GPU) bool { return h.Index == g.Index })
		if i < 0 {
			return Resources{}, neg(DimGPU, gpuIndexList(r.GPUs), "GPU "+strconv.Itoa(g.Index))
		}
		out.GPUs = slices.Delete(out.GPUs, i, i+1)
	}
	if len(out.GPUs) == 0 {
		out.GPUs = nil
	}
	for _, k := range extraKeys(r.Extra, o.Extra) {
		a, b := r.Extra[k], o.Extra[k]
		if b > a {
			return Resources{}, neg(k, strconv.FormatInt(a, 10), strconv.FormatInt(b, 10))
		}
		if a-b != 0 {
			if out.Extra == nil {
				out.Extra = map[string]int64{}
			}
			out.Extra[k] = a - b
		}
	}
	return out, nil
}

// Validate reports a negative CPU or Extra amount, a CPU amount beyond a
// million cores, or an empty Extra kind name.
func (r Resources) Validate() error {
	if err := r.checkNonNegative("validate"); err != nil {
		return err
	}
	if r.CPU > maxMilliCPU {
		return fmt.Errorf("cpu %s: more than %d cores", r.CPU, maxMilliCPU/1000)
	}
	for k := range r.Extra {
		if strings.TrimSpace(k) == "" {
			return errors.New("extra: empty resource kind")
		}
	}
	return nil
}

// ValidateDevices is Validate plus the rules for a machine's or provider's
// resources: each GPU Index appears once and is not negative.
func (r Resources) ValidateDevices() error {
	if err := r.Validate(); err != nil {
		return err
	}
	seen := map[int]bool{}
	for _, g := range r.GPUs {
		if g.Index < 0 {
			return fmt.Errorf("gpu: negative index %d", g.Index)
		}
		if seen[g.Index] {
			return fmt.Errorf("gpu: index %d listed twice", g.Index)
		}
		seen[g.Index] = true
	}
	return nil
}

func (r Resources) checkNonNegative(op string) error {
	if r.CPU < 0 {
		return &AmountError{Op: op, Dimension: DimCPU, A: r.CPU.String(), Err: ErrNegative}
	}
	for _, k := range mapkeys.Sorted(r.Extra) {
		if r.Extra[k] < 0 {
			return &AmountError{Op: op, Dimension: k, A: strconv.FormatInt(r.Extra[k], 10), Err: ErrNegative}
		}
	}
	return nil
}

// IsZero reports whether r holds nothing at all.
func (r Resources) IsZero() bool {
	if r.CPU != 0 || r.RAM != 0 || r.Disk != 0 || len(r.GPUs) != 0 {
		return false
	}
	for _, v := range r.Extra {
		if v != 0 {
			return false
		}
	}
	return true
}

// Equal reports whether r and o hold the same amounts: GPUs are compared as a
// multiset, an Extra kind set to zero equals a missing one.
func (r Resources) Equal(o Resources) bool {
	if r.CPU != o.CPU || r.RAM != o.RAM || r.Disk != o.Disk || len(r.GPUs) != len(o.GPUs) {
		return false
	}
	for _, k := range extraKeys(r.Extra, o.Extra) {
		if r.Extra[k] != o.Extra[k] {
			return false
		}
	}
	a, b := sortedGPUs(r.GPUs), sortedGPUs(o.GPUs)
	return slices.Equal(a, b)
}

// String is a one-line summary: "cpu 2, ram 4GiB, disk 10GiB, gpus #0 nvidia T4 15GiB".
func (r Resources) String() string {
	parts := []string{"cpu " + r.CPU.String(), "ram " + r.RAM.String(), "disk " + r.Disk.String()}
	if len(r.GPUs) > 0 {
		g := make([]string, len(r.GPUs))
		for i, x := range r.GPUs {
			g[i] = x.String()
		}
		parts = append(parts, "gpus "+strings.Join(g, " + "))
	}
	for _, k := range mapkeys.Sorted(r.Extra) {
		parts = append(parts, k+" "+strconv.FormatInt(r.Extra[k], 10))
	}
	return strings.Join(parts, ", ")
}

func addBytes(a, b Bytes) (Bytes, bool) {
	s := a + b
	return s, s >= a
}

func sortedGPUs(g []GPU) []GPU {
	s := slices.Clone(g)
	sort.SliceStable(s, func(i, j int) bool {
		if s[i].Index != s[j].Index {
			return s[i].Index < s[j].Index
		}
		if s[i].Vendor != s[j].Vendor {
			return s[i].Vendor < s[j].Vendor
		}
		if s[i].Model != s[j].Model {
			return s[i].Model < s[j].Model
		}
		return s[i].VRAM < s[j].VRAM
	})
	return s
}

func gpuIndexList(g []GPU) string {
	if len(g) == 0 {
		return "no GPUs"
	}
	ids := make([]string, len(g))
	for i, x := range g {
		ids[i] = strconv.Itoa(x.Index)
	}
	return "GPUs " + strings.Join(ids, ",")
}

// extraKeys returns the union of both maps' keys, sorted.
func extraKeys(a, b map[string]int64) []string {
	if len(a) == 0 && len(b) == 0 {
		return nil
	}
	keys := mapkeys.Sorted(a)
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// ErrGPUFlag is wrapped by every error ParseGPUFlag returns.
var ErrGPUFlag = errors.New("not a GPU")

// ParseGPUFlag parses the --gpu flag of `dms onboard`: "INDEX" dedicates the
// whole card, "INDEX:VRAM" offers that much of its memory ("0:8GiB").
func ParseGPUFlag(s string) (GPU, error) {
	idx, vram, hasVRAM := strings.Cut(s, ":")
	n, err := strconv.Atoi(idx)
	if err != nil || n < 0 || n > MaxGPUs || idx != strconv.Itoa(n) {
		return GPU{}, fmt.Errorf("%q is %w (want INDEX or INDEX:VRAM, as 0 or 0:8GiB)", s, ErrGPUFlag)
	}
	g := GPU{Index: n}
	if hasVRAM {
		if g.VRAM, err = ParseBytes(vram); err != nil {
			return GPU{}, fmt.Errorf("%q is %w: vram: %w", s, ErrGPUFlag, err)
		}
	}
	return g, nil
}
