package scalebench

import (
	"os"
	"reflect"
	"runtime"
	"testing"
)

func TestDist(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(100 - i) // 100 … 1, unsorted
	}
	tests := []struct {
		name string
		in   []float64
		want Dist
	}{
		{name: "none", want: Dist{}},
		{name: "one", in: []float64{7}, want: Dist{N: 1, P50: 7, P99: 7, Max: 7}},
		{name: "two: nearest rank", in: []float64{9, 3}, want: Dist{N: 2, P50: 3, P99: 9, Max: 9}},
		{name: "three", in: []float64{5, 1, 3}, want: Dist{N: 3, P50: 3, P99: 5, Max: 5}},
		{name: "a hundred", in: hundred, want: Dist{N: 100, P50: 50, P99: 99, Max: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			if got := dist(tt.in); got != tt.want {
				t.Fatalf("dist(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
			if !reflect.DeepEqual(in, tt.in) {
				t.Fatalf("dist reordered its input: %v, was %v", tt.in, in)
			}
		})
	}
}

func TestStatusKB(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	kb, err := statusKB(os.Getpid(), "VmRSS:")
	if err != nil || kb == 0 {
		t.Fatalf("statusKB(self, VmRSS:) = %d, %v, want the test's resident size", kb, err)
	}
	if _, err := statusKB(os.Getpid(), "NoSuchField:"); err == nil {
		t.Fatal("statusKB(self, NoSuchField:) found it")
	}
}
