package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// testKey is a deterministic key from a one-byte seed.
func testKey(tb testing.TB, b byte) *identity.Key {
	tb.Helper()
	k, err := identity.KeyFromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

var t0 = time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC)

// testTerms are valid terms between req and prov.
func testTerms(req, prov *identity.Key) Terms {
	return Terms{
		Version:     Version,
		Deployment:  "d1",
		Node:        "web",
		Reservation: "r1",
		Allocations: []string{"d1.web.0"},
		Requester:   req.DID(),
		Provider:    prov.DID(),
		Price:       match.Price{CPU: 1_000_000, RAM: 100_000, Disk: 10_000, GPU: 2_000_000},
		Reserved:    match.Resources{CPU: 2000, RAM: 4 << 30, Disk: 10 << 30, GPUs: []match.GPU{{Index: 0}}},
		Interval:    time.Minute,
		Settlement:  SettleLocal,
		Created:     t0,
	}
}

// party is a signed contract with both keys.
type party struct {
	req, prov *identity.Key
	c         *Contract
}

func newParty(tb testing.TB) party {
	tb.Helper()
	req, prov := testKey(tb, 1), testKey(tb, 2)
	c, err := New(testTerms(req, prov), req)
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.SignAsProvider(prov); err != nil {
		tb.Fatal(err)
	}
	return party{req: req, prov: prov, c: c}
}

// wire passes v through JSON, as between two nodes: nothing but the
// exported fields survive.
func wire[T any](tb testing.TB, v *T) *T {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		tb.Fatal(err)
	}
	return out
}

// usageAt is usage growing with step i.
func usageAt(i uint64) Usage {
	return Usage{CPUMicros: 1_500_000 * i, MemoryByteSeconds: (1 << 30) * 60 * i, WallMillis: 60_000 * i, NetBytes: 1000 * i}
}

// wantRefusal checks err is a *RefusalError wrapping want.
func wantRefusal(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var r *RefusalError
	if !errors.As(err, &r) {
		t.Fatalf("error %v (%T) is not a *RefusalError", err, err)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %q does not wrap %q", err, want)
	}
	if r.Detail == "" || !strings.HasPrefix(err.Error(), want.Error()+": ") {
		t.Fatalf("refusal %q: want %q and a detail", err, want)
	}
}

func TestAmount(t *testing.T) {
	gib := uint64(1 << 30)
	cases := []struct {
		name  string
		price match.Price
		res   match.Resources
		u     Usage
		want  match.Money
	}{
		{"nothing", match.Price{CPU: 1_000_000}, match.Resources{}, Usage{}, 0},
		{"one core-hour", match.Price{CPU: 1_000_000}, match.Resources{}, Usage{CPUMicros: 3_600_000_000}, 1_000_000},
		{"cpu floors", match.Price{CPU: 1_000_000}, match.Resources{}, Usage{CPUMicros: 3_599}, 0},
		{"cpu 3600 µs is one micro-unit", match.Price{CPU: 1_000_000}, match.Resources{}, Usage{CPUMicros: 3_600}, 1},
		{"one GiB-hour of ram", match.Price{RAM: 500_000}, match.Resources{}, Usage{MemoryByteSeconds: gib * 3600}, 500_000},
		{"ram floors", match.Price{RAM: 1}, match.Resources{}, Usage{MemoryByteSeconds: gib*3600 - 1}, 0},
		{"disk by wall time", match.Price{Disk: 10_000}, match.Resources{Disk: 10 << 30}, Usage{WallMillis: 3_600_000}, 100_000},
		{"gpu by wall time", match.Price{GPU: 2_000_000}, match.Resources{GPUs: make([]match.GPU, 2)}, Usage{WallMillis: 1_800_000}, 2_000_000},
		{"parts floor separately", match.Price{CPU: 1, RAM: 1}, match.Resources{}, Usage{CPUMicros: 1_800_000_000, MemoryByteSeconds: gib * 1800}, 0},
		{"all parts", match.Price{CPU: 1_000_000, RAM: 100_000, Disk: 10_000, GPU: 2_000_000},
			match.Resources{Disk: 1 << 30, GPUs: make([]match.GPU, 1)},
			Usage{CPUMicros: 7_200_000_000, MemoryByteSeconds: gib * 3600, WallMillis: 3_600_000},
			2_000_000 + 100_000 + 10_000 + 2_000_000},
		{"net bytes are free", match.Price{CPU: 1_000_000}, match.Resources{}, Usage{NetBytes: math.MaxUint64}, 0},
		{"huge cpu saturates", match.Price{CPU: match.MaxMoney}, match.Resources{}, Usage{CPUMicros: math.MaxUint64}, match.MaxMoney},
		{"three factors beyond 128 bits saturate", match.Price{Disk: match.MaxMoney}, match.Resources{Disk: math.MaxInt64}, Usage{WallMillis: math.MaxUint64}, match.MaxMoney},
		{"large but exact", match.Price{CPU: 1_000_000}, match.Resources{}, Usage{CPUMicros: math.MaxUint64}, match.Money(math.MaxUint64 / 3600)},
		{"sum saturates", match.Price{CPU: match.MaxMoney / 2, RAM: match.MaxMoney / 2}, match.Resources{}, Usage{CPUMicros: 3_600_000_000 * 2, MemoryByteSeconds: gib * 3600 * 2}, match.MaxMoney},
		{"negative price", match.Price{CPU: -1}, match.Resources{}, Usage{}, match.MaxMoney},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := Terms{Price: tc.price, Reserved: tc.res}
			if got := tr.Amount(tc.u); got != tc.want {
				t.Fatalf("Amount = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestAmountMonotone(t *testing.T) {
	tr := testTerms(testKey(t, 1), testKey(t, 2))
	prev := match.Money(0)
	for i := uint64(0); i < 500; i++ {
		a := tr.Amount(usageAt(i))
		if a < prev {
			t.Fatalf("amount at step %d is %d, below %d", i, a, prev)
		}
		prev = a
	}
	if prev == 0 {
		t.Fatal("amount stayed zero")
	}
}

func TestValidate(t *testing.T) {
	req, prov, user := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	cases := []struct {
		name   string
		change func(*Terms)
		ok     bool
	}{
		{"valid", func(*Terms) {}, true},
		{"user set", func(t *Terms) { t.User = user.DID() }, true},
		{"unlimited budget", func(t *Terms) { t.Budget = 0 }, true},
		{"version 0", func(t *Terms) { t.Version = 0 }, false},
		{"version 2", func(t *Terms) { t.Version = 2 }, false},
		{"no deployment", func(t *Terms) { t.Deployment = "" }, false},
		{"no node", func(t *Terms) { t.Node = "" }, false},
		{"no reservation", func(t *Terms) { t.Reservation = "" }, false},
		{"long reservation", func(t *Terms) { t.Reservation = strings.Repeat("r", 256) }, false},
		{"no allocations", func(t *Terms) { t.Allocations = nil }, false},
		{"too many allocations", func(t *Terms) {
			t.Allocations = nil
			for i := range MaxAllocations + 1 {
				t.Allocations = append(t.Allocations, strings.Repeat("a", i+1))
			}
		}, false},
		{"empty allocation", func(t *Terms) { t.Allocations = []string{""} }, false},
		{"allocation twice", func(t *Terms) { t.Allocations = []string{"a", "a"} }, false},
		{"bad requester", func(t *Terms) { t.Requester = "did:key:zBAD" }, false},
		{"no provider", func(t *Terms) { t.Provider = "" }, false},
		{"bad user", func(t *Terms) { t.User = "alice" }, false},
		{"negative price", func(t *Terms) { t.Price.RAM = -1 }, false},
		{"negative cpu", func(t *Terms) { t.Reserved.CPU = -1 }, false},
		{"interval too short", func(t *Terms) { t.Interval = MinInterval - 1 }, false},
		{"interval too long", func(t *Terms) { t.Interval = MaxInterval + 1 }, false},
		{"interval bounds", func(t *Terms) { t.Interval = MinInterval }, true},
		{"negative budget", func(t *Terms) { t.Budget = -1 }, false},
		{"unknown settlement", func(t *Terms) { t.Settlement = "chain" }, false},
		{"no created", func(t *Terms) { t.Created = time.Time{} }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := testTerms(req, prov)
			tc.change(&tr)
			err := tr.Validate()
			if tc.ok {
				wantRefusal(t, err, nil)
			} else {
				wantRefusal(t, err, ErrMalformed)
			}
		})
	}
}

func TestNewOpenSign(t *testing.T) {
	req, prov, other := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	if _, err := New(testTerms(req, prov), other); !errors.Is(err, ErrWrongParty) {
		t.Fatalf("New with another key: %v, want ErrWrongParty", err)
	}
	bad := testTerms(req, prov)
	bad.Interval = 0
	if _, err := New(bad, req); !errors.Is(err, ErrMalformed) {
		t.Fatalf("New with bad terms: %v, want ErrMalformed", err)
	}
	c, err := New(testTerms(req, prov), req)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != hashHex(c.Body) || c.Terms() == nil || c.Terms().Deployment != "d1" {
		t.Fatalf("New: id %s terms %+v", c.ID, c.Terms())
	}
	if c.Signed() {
		t.Fatal("Signed before the provider signed")
	}
	// The provider receives it over the wire.
	pc := wire(t, c)
	if pc.Terms() != nil {
		t.Fatal("terms survived the wire")
	}
	wantRefusal(t, pc.Open(), nil)
	if !pc.Terms().Created.Equal(t0) || pc.Terms().Provider != prov.DID() {
		t.Fatalf("opened terms %+v", pc.Terms())
	}
	wantRefusal(t, pc.SignAsProvider(other), ErrWrongParty)
	wantRefusal(t, pc.SignAsProvider(req), ErrWrongParty)
	wantRefusal(t, pc.SignAsProvider(prov), nil)
	if !pc.Signed() {
		t.Fatal("not Signed after SignAsProvider")
	}
	// The requester takes the provider's signature.
	c.ProviderSig = pc.ProviderSig
	wantRefusal(t, c.Open(), nil)
	if !c.Signed() || !wire(t, c).Signed() {
		t.Fatal("not Signed with both signatures")
	}
	c.ProviderSig = other.Sign([]byte(contractPrefix + c.ID))
	if c.Signed() {
		t.Fatal("Signed with a provider signature by another key")
	}
	wantRefusal(t, c.Open(), ErrSignature)
}

// signed builds a contract from raw body bytes, signed by req (and prov
// when not nil), bypassing New's checks.
func signed(body []byte, req, prov *identity.Key) *Contract {
	id := hashHex(body)
	c := &Contract{ID: id, Body: body, RequesterSig: req.Sign([]byte(contractPrefix + id))}
	if prov != nil {
		c.ProviderSig = prov.Sign([]byte(contractPrefix + id))
	}
	return c
}

func TestOpenContractRefusals(t *testing.T) {
	req, prov, other := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	good, err := json.Marshal(testTerms(req, prov))
	if err != nil {
		t.Fatal(err)
	}
	withField := func(k, v string) []byte {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = json.RawMessage(v)
		}
		b, _ := json.Marshal(m)
		return b
	}
	cases := []struct {
		name string
		c    func() *Contract
		want error
	}{
		{"good", func() *Contract { return signed(good, req, prov) }, nil},
		{"good without the provider", func() *Contract { return signed(good, req, nil) }, nil},
		{"id not the hash", func() *Contract {
			c := signed(good, req, prov)
			c.ID = hashHex([]byte("x"))
			return c
		}, ErrMalformed},
		{"id not hex", func() *Contract {
			c := signed(good, req, prov)
			c.ID = strings.ToUpper(c.ID)
			return c
		}, ErrMalformed},
		{"body changed", func() *Contract {
			c := signed(good, req, prov)
			c.Body = bytes.Replace(c.Body, []byte(`"d1"`), []byte(`"d2"`), 1)
			return c
		}, ErrMalformed},
		{"oversize", func() *Contract {
			return signed(append(bytes.Repeat([]byte(" "), MaxEncoded), good...), req, prov)
		}, ErrMalformed},
		{"unknown version", func() *Contract { return signed(withField("v", "2"), req, prov) }, ErrMalformed},
		{"unknown field", func() *Contract { return signed(withField("tip", "1"), req, prov) }, ErrMalformed},
		{"missing deployment", func() *Contract { return signed(withField("deployment", ""), req, prov) }, ErrMalformed},
		{"missing provider", func() *Contract { return signed(withField("provider", ""), req, prov) }, ErrMalformed},
		{"trailing data", func() *Contract { return signed(append(append([]byte{}, good...), []byte(" {}")...), req, prov) }, ErrMalformed},
		{"not json", func() *Contract { return signed([]byte("{"), req, prov) }, ErrMalformed},
		{"null", func() *Contract { return signed([]byte("null"), req, prov) }, ErrMalformed},
		{"requester sig by another key", func() *Contract { return signed(good, other, prov) }, ErrSignature},
		{"provider sig by another key", func() *Contract { return signed(good, req, other) }, ErrSignature},
		{"no requester sig", func() *Contract {
			c := signed(good, req, prov)
			c.RequesterSig = nil
			return c
		}, ErrSignature},
		{"sigs swapped", func() *Contract {
			c := signed(good, req, prov)
			c.RequesterSig, c.ProviderSig = c.ProviderSig, c.RequesterSig
			return c
		}, ErrSignature},
		{"note signature passed as contract's", func() *Contract {
			c := signed(good, req, prov)
			c.RequesterSig = req.Sign([]byte(acceptPrefix + c.ID))
			return c
		}, ErrSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c()
			wantRefusal(t, c.Open(), tc.want)
			if tc.want == nil && c.Terms() == nil {
				t.Fatal("Open left no terms")
			}
			if tc.want != nil && c.Terms() != nil {
				t.Fatal("refused contract has terms")
			}
		})
	}
}

func TestCheckBudget(t *testing.T) {
	cases := []struct {
		name                   string
		budget, others, amount match.Money
		want                   error
	}{
		{"no cap", 0, match.MaxMoney, match.MaxMoney, nil},
		{"within", 10, 4, 5, nil},
		{"exactly", 10, 4, 6, nil},
		{"one above", 10, 4, 7, ErrBudget},
		{"note alone above", 10, 0, 11, ErrBudget},
		{"others alone above", 10, 11, 0, ErrBudget},
		{"sum overflows", 10, match.MaxMoney, match.MaxMoney, ErrBudget},
		{"negative others", 10, -1, 0, ErrMalformed},
		{"negative amount", 10, 0, -1, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := Terms{Deployment: "d1", Budget: tc.budget}
			wantRefusal(t, CheckBudget(&tr, tc.others, tc.amount), tc.want)
		})
	}
}
