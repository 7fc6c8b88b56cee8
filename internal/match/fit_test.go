package match

import (
	"errors"
	"slices"
	"testing"
)

func TestCompare(t *testing.T) {
	n16 := GPU{Index: 0, Vendor: "nvidia", Model: "NVIDIA A4000", VRAM: gib(16)}
	n8 := GPU{Index: 1, Vendor: "nvidia", Model: "NVIDIA T1000", VRAM: gib(8)}
	a32 := GPU{Index: 2, Vendor: "amd", Model: "Instinct MI50", VRAM: gib(32)}
	machine := res(4000, gib(8), gib(100), n16, n8, a32)
	tests := []struct {
		name     string
		have     Resources
		want     Resources
		fits     bool
		gpus     []int    // assigned device indices when it fits
		messages []string // the reasons, in order, when it does not
	}{
		{name: "zero requirement fits an empty machine", have: Resources{}, want: Resources{}, fits: true},
		{name: "zero requirement fits a machine", have: machine, want: Resources{}, fits: true},
		{name: "exact fit is a fit", have: res(1000, gib(2), gib(10)), want: res(1000, gib(2), gib(10)), fits: true},
		{name: "exact gpu fit", have: res(0, 0, 0, n8), want: res(0, 0, 0, GPU{VRAM: gib(8)}), fits: true, gpus: []int{1}},
		{name: "smaller fits", have: machine, want: res(500, gib(1), gib(1)), fits: true},
		{name: "ram short", have: res(1000, gib(2), gib(10)), want: res(1000, gib(4), gib(10)),
			messages: []string{"ram: need 4GiB, have 2GiB free"}},
		{name: "every dimension short, in order", have: res(1000, gib(2), gib(10)), want: res(1500, gib(4), gib(20)),
			messages: []string{"cpu: need 1.5, have 1 free", "ram: need 4GiB, have 2GiB free", "disk: need 20GiB, have 10GiB free"}},
		{name: "one millicore short", have: res(999, 0, 0), want: res(1000, 0, 0), messages: []string{"cpu: need 1, have 0.999 free"}},
		{name: "gpu by vendor", have: machine, want: res(0, 0, 0, GPU{Vendor: "AMD"}), fits: true, gpus: []int{2}},
		{name: "gpu by model substring", have: machine, want: res(0, 0, 0, GPU{Model: "t1000"}), fits: true, gpus: []int{1}},
		{name: "smallest qualifying gpu chosen", have: machine, want: res(0, 0, 0, GPU{Vendor: "nvidia"}), fits: true, gpus: []int{1}},
		// A greedy pass taking the first fitting device would give the
		// 16GiB card to the 8GiB want and fail the 16GiB want.
		{name: "no double assignment, maximal matching", have: res(0, 0, 0, n16, n8),
			want: res(0, 0, 0, GPU{Vendor: "nvidia", VRAM: gib(8)}, GPU{Vendor: "nvidia", VRAM: gib(16)}), fits: true, gpus: []int{1, 0}},
		{name: "two wants, one device", have: res(0, 0, 0, n16),
			want:     res(0, 0, 0, GPU{VRAM: gib(8)}, GPU{VRAM: gib(8)}),
			messages: []string{"gpu: need 2 GPUs (≥8GiB, ≥8GiB), only 1 of 1 GPU free match (#0 nvidia NVIDIA A4000 16GiB)"}},
		{name: "vram too small", have: res(0, 0, 0, n8), want: res(0, 0, 0, GPU{Vendor: "nvidia", VRAM: gib(16)}),
			messages: []string{"gpu: need 1 GPU (nvidia ≥16GiB), only 0 of 1 GPU free match (#1 nvidia NVIDIA T1000 8GiB)"}},
		{name: "no gpus", have: res(1000, 0, 0), want: res(0, 0, 0, GPU{}), messages: []string{"gpu: need 1 GPU (any GPU), have none free"}},
		{name: "extra kind", have: Resources{Extra: map[string]int64{"fpga": 1}}, want: Resources{Extra: map[string]int64{"fpga": 2}},
			messages: []string{"fpga: need 2, have 1 free"}},
		{name: "extra kind exact", have: Resources{Extra: map[string]int64{"fpga": 2}}, want: Resources{Extra: map[string]int64{"fpga": 2}}, fits: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := Compare(tc.have, tc.want)
			if f.OK() != tc.fits {
				t.Fatalf("Compare(%v, %v) = %v, want fits=%v", tc.have, tc.want, f, tc.fits)
			}
			if tc.fits {
				if !slices.Equal(f.GPUs, tc.gpus) {
					t.Fatalf("Compare(%v, %v).GPUs = %v, want %v", tc.have, tc.want, f.GPUs, tc.gpus)
				}
				return
			}
			var got []string
			for _, r := range f.Reasons {
				got = append(got, r.String())
			}
			if !slices.Equal(got, tc.messages) {
				t.Fatalf("Compare(%v, %v) reasons = %q, want %q", tc.have, tc.want, got, tc.messages)
			}
			var nf *NoFitError
			if err := f.Err(); !errors.As(err, &nf) || !errors.Is(err, ErrNoFit) {
				t.Fatalf("Fit.Err() = %v, want a *NoFitError", err)
			}
		})
	}
}

func TestAssign(t *testing.T) {
	n16 := GPU{Index: 3, Vendor: "nvidia", VRAM: gib(16)}
	n8 := GPU{Index: 5, Vendor: "nvidia", VRAM: gib(8)}
	have := res(4000, gib(8), gib(10), n16, n8)
	got, err := Assign(have, res(1000, gib(1), 0, GPU{VRAM: gib(10)}))
	if err != nil {
		t.Fatal(err)
	}
	want := res(1000, gib(1), 0, n16)
	if !got.Equal(want) {
		t.Fatalf("Assign = %v, want %v", got, want)
	}
	left, err := have.Sub(got)
	if err != nil || !left.Equal(res(3000, gib(7), gib(10), n8)) {
		t.Fatalf("have - Assign = %v, %v, want the 8GiB card left", left, err)
	}
	if _, err := Assign(have, res(8000, 0, 0)); !errors.Is(err, ErrNoFit) {
		t.Fatalf("Assign(too much) = %v, want ErrNoFit", err)
	}
}

// TestCompareSubAgree checks the invariant the accounting relies on: what
// fits can be subtracted, and what does not fit cannot.
func TestCompareSubAgree(t *testing.T) {
	have := res(2000, gib(4), gib(10), GPU{Index: 0, VRAM: gib(8)})
	for _, want := range []Resources{
		{}, res(2000, gib(4), gib(10)), res(2001, 0, 0), res(0, gib(4)+1, 0),
		res(0, 0, 0, GPU{VRAM: gib(8)}), res(0, 0, 0, GPU{VRAM: gib(9)}), res(0, 0, 0, GPU{}, GPU{}),
	} {
		f := Compare(have, want)
		a, aerr := Assign(have, want)
		if f.OK() != (aerr == nil) {
			t.Fatalf("Compare(%v) = %v but Assign error = %v", want, f, aerr)
		}
		if f.OK() {
			if _, err := have.Sub(a); err != nil {
				t.Fatalf("Compare(%v) fits but Sub(Assign) = %v", want, err)
			}
		}
	}
}
