package contract

import (
	"math"
	"math/bits"

	"github.com/dmsnet/dms/internal/match"
)

// Denominators of the price vector: prices are per hour, usage is in µs,
// byte-seconds and ms.
const (
	cpuDen  = 3_600_000_000         // µs per hour
	ramDen  = (1 << 30) * 3600      // byte-seconds per GiB-hour
	diskDen = (1 << 30) * 3_600_000 // byte-ms per GiB-hour
	gpuDen  = 3_600_000             // ms per hour
	maxPart = uint64(math.MaxInt64) // largest amount
)

// Amount is what usage u costs under the terms, rounded down to the
// micro-unit, each priced part separately (so the requester recomputes
// exactly the provider's figure); MaxMoney when it overflows.
//
//	floor(cpu_us × Price.CPU / 3.6e9)
//	+ floor(memory_byte_s × Price.RAM / (2^30 × 3600))
//	+ floor(wall_ms × Reserved.Disk × Price.Disk / (2^30 × 3.6e6))
//	+ floor(wall_ms × len(Reserved.GPUs) × Price.GPU / 3.6e6)
//
// Each part is computed exactly in 128 bits. Negative prices (terms that
// do not validate) cost MaxMoney.
func (t *Terms) Amount(u Usage) match.Money {
	p := t.Price
	if p.CPU < 0 || p.RAM < 0 || p.Disk < 0 || p.GPU < 0 {
		return match.MaxMoney
	}
	gpus := uint64(len(t.Reserved.GPUs))
	total := uint64(0)
	for _, part := range [...]struct{ a, b, c, den uint64 }{
		{u.CPUMicros, uint64(p.CPU), 1, cpuDen},
		{u.MemoryByteSeconds, uint64(p.RAM), 1, ramDen},
		{u.WallMillis, uint64(t.Reserved.Disk), uint64(p.Disk), diskDen},
		{u.WallMillis, gpus, uint64(p.GPU), gpuDen},
	} {
		v, ok := mulDiv3(part.a, part.b, part.c, part.den)
		if !ok || v > maxPart-total {
			return match.MaxMoney
		}
		total += v
	}
	return match.Money(total)
}

// mulDiv3 returns floor(a×b×c/den) and whether it fits in an int64.
func mulDiv3(a, b, c, den uint64) (uint64, bool) {
	hi, lo := bits.Mul64(a, b)
	if c != 1 {
		h1, l1 := bits.Mul64(lo, c)
		h2, l2 := bits.Mul64(hi, c)
		if h2 != 0 {
			return 0, false
		}
		var carry uint64
		hi, carry = bits.Add64(h1, l2, 0)
		if carry != 0 {
			return 0, false
		}
		lo = l1
	}
	if hi >= den {
		return 0, false
	}
	q, _ := bits.Div64(hi, lo, den)
	return q, q <= maxPart
}

// CheckBudget is the requester's budget check of a note: amount is the
// note's cumulative amount and others the sum of the latest accepted
// amounts of the deployment's other contracts. It refuses (ErrBudget)
// when together they exceed the terms' budget; a budget of 0 is no cap.
// Negative inputs are refused as ErrMalformed.
func CheckBudget(t *Terms, others, amount match.Money) error {
	if others < 0 || amount < 0 {
		return refuse(ErrMalformed, "negative amount")
	}
	if t.Budget == 0 {
		return nil
	}
	if amount > t.Budget || others > t.Budget-amount {
		total := "more than " + match.MaxMoney.String()
		if others <= match.MaxMoney-amount {
			total = (others + amount).String()
		}
		return refuse(ErrBudget, "deployment %s would cost %s, its budget is %s", t.Deployment, total, t.Budget)
	}
	return nil
}
