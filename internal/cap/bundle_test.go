package cap

import (
	"bytes"
	"testing"
)

func TestBundleRoundTrip(t *testing.T) {
	inv := []byte("invocation")
	proofs := [][]byte{[]byte("d1"), []byte("d2")}
	gotInv, gotProofs, err := DecodeBundle(EncodeBundle(inv, proofs))
	if err != nil || !bytes.Equal(gotInv, inv) || len(gotProofs) != 2 || !bytes.Equal(gotProofs[1], proofs[1]) {
		t.Fatalf("round trip = %q %q %v", gotInv, gotProofs, err)
	}
	for _, bad := range [][]byte{nil, {0}, {1}, {1, 5, 'a'}, {2, 1, 'a'}, append(EncodeBundle(inv, nil), 'x')} {
		if _, _, err := DecodeBundle(bad); err == nil {
			t.Errorf("DecodeBundle(%q) accepted", bad)
		}
	}
}

func FuzzDecodeBundle(f *testing.F) {
	f.Add(EncodeBundle([]byte("i"), [][]byte{[]byte("p")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		inv, proofs, err := DecodeBundle(b)
		if err != nil {
			return
		}
		inv2, proofs2, err := DecodeBundle(EncodeBundle(inv, proofs))
		if err != nil || !bytes.Equal(inv, inv2) || len(proofs) != len(proofs2) {
			t.Fatalf("re-encoded bundle decodes differently: %v", err)
		}
	})
}
