package match

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func gib(n float64) Bytes { return Bytes(n * (1 << 30)) }

func res(cpu MilliCPU, ram, disk Bytes, gpus ...GPU) Resources {
	return Resources{CPU: cpu, RAM: ram, Disk: disk, GPUs: gpus}
}

func TestResourcesAdd(t *testing.T) {
	t4 := GPU{Index: 0, Vendor: "nvidia", Model: "Tesla T4", VRAM: gib(15)}
	a100 := GPU{Index: 1, Vendor: "nvidia", Model: "A100", VRAM: gib(40)}
	tests := []struct {
		name    string
		a, b    Resources
		want    Resources
		wantErr error
		dim     string
	}{
		{name: "zero plus zero", want: Resources{}},
		{name: "plain sum", a: res(1000, gib(2), gib(10)), b: res(500, gib(1), gib(5)), want: res(1500, gib(3), gib(15))},
		{name: "gpus concatenated", a: res(0, 0, 0, t4), b: res(0, 0, 0, a100), want: res(0, 0, 0, t4, a100)},
		{name: "extra summed", a: Resources{Extra: map[string]int64{"fpga": 1}}, b: Resources{Extra: map[string]int64{"fpga": 2, "tpu": 1}},
			want: Resources{Extra: map[string]int64{"fpga": 3, "tpu": 1}}},
		{name: "ram overflow", a: res(0, math.MaxUint64, 0), b: res(0, 1, 0), wantErr: ErrOverflow, dim: DimRAM},
		{name: "disk overflow", a: res(0, 0, math.MaxUint64-5), b: res(0, 0, 6), wantErr: ErrOverflow, dim: DimDisk},
		{name: "cpu overflow", a: res(math.MaxInt64, 0, 0), b: res(1, 0, 0), wantErr: ErrOverflow, dim: DimCPU},
		{name: "extra overflow", a: Resources{Extra: map[string]int64{"x": math.MaxInt64}}, b: Resources{Extra: map[string]int64{"x": 1}}, wantErr: ErrOverflow, dim: "x"},
		{name: "negative cpu operand", a: res(-1, 0, 0), wantErr: ErrNegative, dim: DimCPU},
		{name: "negative extra operand", b: Resources{Extra: map[string]int64{"x": -1}}, wantErr: ErrNegative, dim: "x"},
		{name: "largest ram without overflow", a: res(0, math.MaxUint64-1, 0), b: res(0, 1, 0), want: res(0, math.MaxUint64, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.a.Add(tc.b)
			checkAmount(t, "Add", got, err, tc.want, tc.wantErr, tc.dim)
		})
	}
}

func TestResourcesSub(t *testing.T) {
	g0 := GPU{Index: 0, Vendor: "nvidia", VRAM: gib(16)}
	g1 := GPU{Index: 1, Vendor: "amd", VRAM: gib(8)}
	tests := []struct {
		name    string
		a, b    Resources
		want    Resources
		wantErr error
		dim     string
	}{
		{name: "zero minus zero", want: Resources{}},
		{name: "plain difference", a: res(2000, gib(4), gib(10)), b: res(500, gib(1), gib(10)), want: res(1500, gib(3), 0)},
		{name: "exact to zero", a: res(1000, gib(1), gib(1), g0), b: res(1000, gib(1), gib(1), g0), want: Resources{}},
		{name: "remove gpu by index", a: res(0, 0, 0, g0, g1), b: res(0, 0, 0, GPU{Index: 1}), want: res(0, 0, 0, g0)},
		{name: "cpu below zero", a: res(1000, 0, 0), b: res(1001, 0, 0), wantErr: ErrNegative, dim: DimCPU},
		{name: "ram below zero", a: res(0, gib(2), 0), b: res(0, gib(4), 0), wantErr: ErrNegative, dim: DimRAM},
		{name: "disk below zero", a: res(0, 0, 1), b: res(0, 0, 2), wantErr: ErrNegative, dim: DimDisk},
		{name: "gpu not present", a: res(0, 0, 0, g0), b: res(0, 0, 0, g1), wantErr: ErrNegative, dim: DimGPU},
		{name: "same gpu twice", a: res(0, 0, 0, g0), b: res(0, 0, 0, g0, g0), wantErr: ErrNegative, dim: DimGPU},
		{name: "extra below zero", a: Resources{Extra: map[string]int64{"fpga": 1}}, b: Resources{Extra: map[string]int64{"fpga": 2}}, wantErr: ErrNegative, dim: "fpga"},
		{name: "extra missing is zero", b: Resources{Extra: map[string]int64{"fpga": 1}}, wantErr: ErrNegative, dim: "fpga"},
		{name: "negative subtrahend", a: res(1000, 0, 0), b: res(-1000, 0, 0), wantErr: ErrNegative, dim: DimCPU},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.a.Sub(tc.b)
			checkAmount(t, "Sub", got, err, tc.want, tc.wantErr, tc.dim)
		})
	}
}

func checkAmount(t *testing.T, op string, got Resources, err error, want Resources, wantErr error, dim string) {
	t.Helper()
	if wantErr == nil {
		if err != nil || !got.Equal(want) {
			t.Fatalf("%s = %v, %v, want %v, nil", op, got, err, want)
		}
		return
	}
	var ae *AmountError
	if !errors.Is(err, wantErr) || !errors.As(err, &ae) || ae.Dimension != dim {
		t.Fatalf("%s = %v, %v, want an AmountError on %s wrapping %v", op, got, err, dim, wantErr)
	}
	if !strings.Contains(err.Error(), dim) {
		t.Fatalf("%s error %q does not name the dimension %s", op, err, dim)
	}
}

func TestSubErrorMessage(t *testing.T) {
	_, err := res(0, gib(2), 0).Sub(res(0, gib(4), 0))
	if want := "subtract ram: 4GiB from 2GiB would be negative"; err == nil || err.Error() != want {
		t.Fatalf("Sub error = %v, want %q", err, want)
	}
}

func TestAddSubDoNotAlias(t *testing.T) {
	a := Resources{GPUs: []GPU{{Index: 0}, {Index: 1}}, Extra: map[string]int64{"x": 2}}
	b := Resources{GPUs: []GPU{{Index: 1}}, Extra: map[string]int64{"x": 1}}
	d, err := a.Sub(b)
	if err != nil {
		t.Fatal(err)
	}
	d.GPUs[0].Index = 9
	d.Extra["x"] = 9
	if a.GPUs[0].Index != 0 || a.Extra["x"] != 2 || len(a.GPUs) != 2 {
		t.Fatalf("Sub modified its receiver: %v", a)
	}
	s, err := a.Add(b)
	if err != nil {
		t.Fatal(err)
	}
	s.GPUs[0].Index = 7
	s.Extra["x"] = 7
	if a.GPUs[0].Index != 0 || a.Extra["x"] != 2 {
		t.Fatalf("Add modified its receiver: %v", a)
	}
}

func TestResourcesEqual(t *testing.T) {
	tests := []struct {
		name string
		a, b Resources
		want bool
	}{
		{"zero", Resources{}, Resources{}, true},
		{"gpu order ignored", res(0, 0, 0, GPU{Index: 1}, GPU{Index: 0}), res(0, 0, 0, GPU{Index: 0}, GPU{Index: 1}), true},
		{"zero extra equals missing", Resources{Extra: map[string]int64{"x": 0}}, Resources{}, true},
		{"cpu differs", res(1, 0, 0), res(2, 0, 0), false},
		{"gpu vram differs", res(0, 0, 0, GPU{VRAM: 1}), res(0, 0, 0, GPU{VRAM: 2}), false},
	}
	for _, tc := range tests {
		if got := tc.a.Equal(tc.b); got != tc.want {
			t.Errorf("%s: Equal(%v, %v) = %v, want %v", tc.name, tc.a, tc.b, got, tc.want)
		}
	}
}

func TestValidateDevices(t *testing.T) {
	tests := []struct {
		name string
		r    Resources
		err  string
	}{
		{"ok", res(1000, gib(1), gib(1), GPU{Index: 0}, GPU{Index: 1}), ""},
		{"duplicate gpu", res(0, 0, 0, GPU{Index: 0}, GPU{Index: 0}), "listed twice"},
		{"negative gpu index", res(0, 0, 0, GPU{Index: -1}), "negative index"},
		{"negative cpu", res(-5, 0, 0), "negative"},
		{"too many cores", res(maxMilliCPU+1, 0, 0), "cores"},
		{"empty extra kind", Resources{Extra: map[string]int64{" ": 1}}, "empty"},
	}
	for _, tc := range tests {
		err := tc.r.ValidateDevices()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: ValidateDevices(%v) = %v, want error containing %q", tc.name, tc.r, err, tc.err)
		}
	}
}

func TestParseGPUFlag(t *testing.T) {
	tests := []struct {
		in   string
		want GPU
		err  bool
	}{
		{"0", GPU{Index: 0}, false},
		{"1:8GiB", GPU{Index: 1, VRAM: gib(8)}, false},
		{"2:1.5GiB", GPU{Index: 2, VRAM: gib(1.5)}, false},
		{"-1", GPU{}, true},
		{"+1", GPU{}, true},
		{"01", GPU{}, true},
		{"a:1GiB", GPU{}, true},
		{"0:", GPU{}, true},
		{"0:8 GiB", GPU{}, true},
		{"", GPU{}, true},
		{"99999999999999999999", GPU{}, true},
	}
	for _, tc := range tests {
		got, err := ParseGPUFlag(tc.in)
		if tc.err {
			if err == nil || !errors.Is(err, ErrGPUFlag) {
				t.Errorf("ParseGPUFlag(%q) = %v, %v, want an ErrGPUFlag error", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseGPUFlag(%q) = %v, %v, want %v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseGPUFlag(f *testing.F) {
	for _, s := range []string{"0", "1:8GiB", "-1", "0:", "a", "0:1e400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGPUFlag(s)
		if err != nil {
			if !errors.Is(err, ErrGPUFlag) {
				t.Fatalf("ParseGPUFlag(%q) error %v does not wrap ErrGPUFlag", s, err)
			}
			return
		}
		if g.Index < 0 || g.Index > MaxGPUs {
			t.Fatalf("ParseGPUFlag(%q) = %v, index out of range", s, g)
		}
	})
}
