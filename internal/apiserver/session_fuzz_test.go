package apiserver

import (
	"testing"
	"time"
)

// FuzzSessionCookie: any cookie value is refused without a panic unless it
// is one the server issued, unexpired.
func FuzzSessionCookie(f *testing.F) {
	s, err := New(Config{Addr: "127.0.0.1:0", Token: token})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	good := s.session(now.Add(time.Hour))
	for _, seed := range []string{good, "", ".", "1.", ".00", "99999999999999999999.00", "-1." + good[len("1800003600."):], good + "0", "１８.ab"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if s.sessionOK(v, now) && v != good {
			t.Errorf("sessionOK(%q) = true, only %q was issued", v, good)
		}
	})
}
