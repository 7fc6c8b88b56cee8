package identity

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealTo(t *testing.T) {
	alice, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	bob, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("AKIA…/wJalrXUtnFEMI")
	sealed, err := SealTo(alice.DID(), secret, []byte("d1/creds"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed box holds the plaintext")
	}
	got, err := alice.OpenSealed(sealed, []byte("d1/creds"))
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %q, %v", got, err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	cases := []struct {
		name    string
		key     *Key
		sealed  []byte
		context string
	}{
		{"another key", bob, sealed, "d1/creds"},
		{"another context", alice, sealed, "d2/creds"},
		{"tampered", alice, flipped, "d1/creds"},
		{"truncated", alice, sealed[:10], "d1/creds"},
		{"empty", alice, nil, "d1/creds"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.key.OpenSealed(tc.sealed, []byte(tc.context)); !errors.Is(err, ErrUnseal) {
				t.Fatalf("err %v, want ErrUnseal", err)
			}
		})
	}
	if _, err := SealTo("did:key:zNotAKey", secret, nil); err == nil {
		t.Fatal("sealed to a malformed DID")
	}
}

func FuzzOpenSealed(f *testing.F) {
	k, err := NewKey()
	if err != nil {
		f.Fatal(err)
	}
	s, _ := SealTo(k.DID(), []byte("x"), []byte("c"))
	f.Add(s, []byte("c"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, sealed, context []byte) {
		_, _ = k.OpenSealed(sealed, context) // never panics
	})
}
