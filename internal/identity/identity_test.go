package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	did "github.com/MetaMask/go-did-it"
	didcrypto "github.com/MetaMask/go-did-it/crypto/ed25519"
	didkey "github.com/MetaMask/go-did-it/verifiers/did-key"

	"github.com/dmsnet/dms/internal/lru"
)

func TestDIDRoundTripAndInterop(t *testing.T) {
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	d := k.DID()
	if !strings.HasPrefix(string(d), "did:key:z6Mk") {
		t.Fatalf("DID = %s, want did:key:z6Mk…", d)
	}
	pub, err := ParseDID(string(d))
	if err != nil {
		t.Fatalf("ParseDID(%s): %v", d, err)
	}
	if !bytes.Equal(pub, k.Public()) {
		t.Fatal("ParseDID returned another key")
	}
	// go-ucan's DID library must produce and accept the same string.
	dpub, err := didcrypto.PublicKeyFromBytes(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if got := didkey.FromPublicKey(dpub).String(); got != string(d) {
		t.Fatalf("go-did-it DID = %s, ours %s", got, d)
	}
	if _, err := did.Parse(string(d)); err != nil {
		t.Fatalf("go-did-it cannot parse our DID: %v", err)
	}
}

func TestParseDIDBad(t *testing.T) {
	k, _ := NewKey()
	good := string(k.DID())
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"no prefix", "z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"},
		{"not base58btc", "did:key:m6Mk"},
		{"bad base58 char", "did:key:z0OIl"},
		{"truncated", good[:len(good)-4]},
		{"extended", good + "abc"},
		{"secp256k1 codec", "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"},
		{"huge", "did:key:z" + strings.Repeat("A", 1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseDID(tt.in); !errors.Is(err, ErrBadDID) {
				t.Fatalf("ParseDID(%q) = %v, want ErrBadDID", tt.in, err)
			}
		})
	}
}

func FuzzParseDID(f *testing.F) {
	k, _ := NewKey()
	f.Add(string(k.DID()))
	f.Add("did:key:z")
	f.Add("did:key:z6Mk")
	f.Fuzz(func(t *testing.T, s string) {
		pub, err := ParseDID(s)
		if err != nil {
			return
		}
		if got := DIDFromPublicKey(pub); string(got) != s {
			t.Fatalf("ParseDID(%q) accepted a non-canonical form; canonical %s", s, got)
		}
	})
}

func TestKeystore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	ks := OpenKeystore(dir, TestKDF)
	pass := []byte("correct horse")
	k, err := ks.Create("node", pass)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Create("node", pass); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("second Create = %v, want ErrKeyExists", err)
	}
	d, err := ks.DID("node")
	if err != nil || d != k.DID() {
		t.Fatalf("DID = %s, %v; want %s", d, err, k.DID())
	}
	got, err := ks.Load("node", pass)
	if err != nil {
		t.Fatal(err)
	}
	if got.DID() != k.DID() {
		t.Fatal("loaded another key")
	}
	_, err = ks.Load("node", []byte("wrong"))
	var pe *PassphraseError
	if !errors.As(err, &pe) || err.Error() != "wrong passphrase for key node" {
		t.Fatalf("Load with wrong passphrase = %v, want 'wrong passphrase for key node'", err)
	}
	if _, err := ks.Load("nope", pass); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Load(nope) = %v, want ErrKeyNotFound", err)
	}
	path := filepath.Join(dir, "node.key")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, want 0600", st.Mode().Perm())
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("keystore dir mode = %v, want 0700", st.Mode().Perm())
	}
	// No plaintext key material in the file, in any encoding we could have used.
	data, _ := os.ReadFile(path)
	for _, secret := range [][]byte{k.Seed(), k.Private()} {
		for _, enc := range encodings(secret) {
			if bytes.Contains(data, enc) {
				t.Fatalf("key file holds the private key in plaintext (%q)", enc[:8])
			}
		}
	}
	infos, err := ks.List()
	if err != nil || len(infos) != 1 || infos[0].Name != "node" || infos[0].DID != k.DID() {
		t.Fatalf("List = %+v, %v", infos, err)
	}
}

func encodings(b []byte) [][]byte {
	j, _ := json.Marshal(b) // base64 in quotes
	return [][]byte{b, bytes.Trim(j, `"`), []byte(strings.ToLower(strings.ToUpper(string(hexEnc(b)))))}
}

func hexEnc(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

func TestKeystoreCorruptFiles(t *testing.T) {
	pass := []byte("pw")
	tests := []struct {
		name    string
		corrupt func(data []byte) []byte
		want    string
	}{
		{"truncated", func(d []byte) []byte { return d[:len(d)/2] }, "corrupted or truncated"},
		{"empty", func([]byte) []byte { return nil }, "corrupted or truncated"},
		{"garbage", func([]byte) []byte { return []byte("\x00\x01garbage") }, "corrupted or truncated"},
		{"wrong version", func(d []byte) []byte { return bytes.Replace(d, []byte(`"version": 1`), []byte(`"version": 9`), 1) }, "unknown version"},
		{"huge scrypt n", func(d []byte) []byte { return bytes.Replace(d, []byte(`"n": 1024`), []byte(`"n": 1073741824`), 1) }, "unsupported scrypt"},
		{"short ciphertext", func(d []byte) []byte {
			var f map[string]any
			json.Unmarshal(d, &f)
			f["ciphertext"] = "AAAA"
			out, _ := json.Marshal(f)
			return out
		}, "ciphertext is 3 bytes"},
		{"did swapped", func(d []byte) []byte {
			other, _ := NewKey()
			var f map[string]any
			json.Unmarshal(d, &f)
			f["did"] = string(other.DID())
			out, _ := json.Marshal(f)
			return out
		}, "wrong passphrase"}, // the header is authenticated: tampering fails to open
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ks := OpenKeystore(dir, TestKDF)
			if _, err := ks.Create("node", pass); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "node.key")
			data, _ := os.ReadFile(p)
			if err := os.WriteFile(p, tt.corrupt(data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ks.Load("node", pass)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestSealer(t *testing.T) {
	node, _ := NewKey()
	child, _ := NewKey()
	s, err := NewSealer(node, "child-keys")
	if err != nil {
		t.Fatal(err)
	}
	sealed := s.SealKey(child)
	if bytes.Contains(sealed, child.Seed()) {
		t.Fatal("sealed data holds the seed")
	}
	got, err := s.OpenKey(sealed, child.DID())
	if err != nil || got.DID() != child.DID() {
		t.Fatalf("OpenKey = %v, %v", got, err)
	}
	other, _ := NewKey()
	if _, err := s.OpenKey(sealed, other.DID()); !errors.Is(err, ErrUnseal) {
		t.Fatalf("OpenKey with wrong DID = %v, want ErrUnseal", err)
	}
	s2, _ := NewSealer(other, "child-keys")
	if _, err := s2.OpenKey(sealed, child.DID()); !errors.Is(err, ErrUnseal) {
		t.Fatalf("OpenKey with another node key = %v, want ErrUnseal", err)
	}
	if _, err := s.Open([]byte("short"), nil); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Open(short) = %v", err)
	}
}

func TestPeerIDRoundTrip(t *testing.T) {
	k, _ := NewKey()
	id, err := k.DID().PeerID()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, "12D3KooW") {
		t.Fatalf("PeerID = %s, want 12D3KooW…", id)
	}
	d, err := DIDFromPeerID(id)
	if err != nil || d != k.DID() {
		t.Fatalf("DIDFromPeerID = %s, %v; want %s", d, err, k.DID())
	}
	for _, bad := range []string{"", "12D3", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", "0OIl", strings.Repeat("1", 100)} {
		if _, err := DIDFromPeerID(bad); err == nil {
			t.Errorf("DIDFromPeerID(%q) accepted", bad)
		}
	}
}

func TestDIDFromPeerIDKept(t *testing.T) {
	keys := make([]*Key, 3)
	ids := make([]string, len(keys))
	for i := range keys {
		keys[i], _ = NewKey()
		ids[i], _ = keys[i].DID().PeerID()
	}
	for round := range 2 { // the first converts, the second reads the cache
		for i, id := range ids {
			if d, err := DIDFromPeerID(id); err != nil || d != keys[i].DID() {
				t.Fatalf("round %d: DIDFromPeerID(%d) = %s, %v; want %s", round, i, d, err, keys[i].DID())
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = DIDFromPeerID(ids[1]) }); n != 0 {
		t.Errorf("a kept conversion allocates %v times, want 0", n)
	}
	if _, err := DIDFromPeerID(ids[0][:len(ids[0])-1]); err == nil {
		t.Error("a peer ID one character short accepted after its whole form was kept")
	}

	const max = 8
	c := lru.New[string, DID](max)
	for i := range 20 {
		c.Put(fmt.Sprint(i), DID(fmt.Sprint("d", i)))
		if c.Len() > max {
			t.Fatalf("after %d puts the cache holds %d, over its %d", i+1, c.Len(), max)
		}
	}
	if d, ok := c.Get("19"); !ok || d != "d19" {
		t.Errorf("get(19) = %q, %v; want d19", d, ok)
	}
}
