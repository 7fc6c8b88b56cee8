package identity

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/scrypt"

	"github.com/dmsnet/dms/internal/atomicfile"
)

// A Keystore keeps named keys in a directory, one file per key
// (<dir>/<name>.key, mode 0600), each private key encrypted with a key
// derived from a passphrase by scrypt and sealed with XChaCha20-Poly1305.
// The DID is stored beside the ciphertext, so reading it needs no
// passphrase; the header (name, DID, KDF parameters) is the AEAD's
// additional data, so tampering with it is detected on unlock.
type Keystore struct {
	dir    string
	params KDFParams
}

// KDFParams are the scrypt cost parameters of newly written keys. Existing
// key files carry their own.
type KDFParams struct {
	N int `json:"n"`
	R int `json:"r"`
	P int `json:"p"`
}

// DefaultKDF costs about 100 ms and 32 MiB per unlock.
var DefaultKDF = KDFParams{N: 1 << 15, R: 8, P: 1}

// TestKDF is cheap; for tests only.
var TestKDF = KDFParams{N: 1 << 10, R: 8, P: 1}

// Errors returned by the keystore.
var (
	// ErrKeyNotFound: no key of that name.
	ErrKeyNotFound = errors.New("key not found")
	// ErrKeyExists: Create refuses to overwrite a key.
	ErrKeyExists = errors.New("key already exists")
)

// PassphraseError is returned when a passphrase does not open a key.
type PassphraseError struct{ Key string }

func (e *PassphraseError) Error() string { return "wrong passphrase for key " + e.Key }

// CorruptKeyError is returned when a key file cannot be read as a key file.
type CorruptKeyError struct {
	Key, Path, Reason string
}

func (e *CorruptKeyError) Error() string {
	return fmt.Sprintf("key %s: %s is corrupted or truncated: %s", e.Key, e.Path, e.Reason)
}

const keyFileVersion = 1

// keyFile is the on-disk form of a key.
type keyFile struct {
	Version    int       `json:"version"`
	Name       string    `json:"name"`
	DID        DID       `json:"did"`
	Created    time.Time `json:"created"`
	KDF        string    `json:"kdf"`
	KDFParams  KDFParams `json:"kdf_params"`
	Salt       []byte    `json:"salt"`
	Cipher     string    `json:"cipher"`
	Nonce      []byte    `json:"nonce"`
	Ciphertext []byte    `json:"ciphertext"`
}

// ad is the additional authenticated data: everything in the header.
func (f *keyFile) ad() []byte {
	return fmt.Appendf(nil, "dms-key|%d|%s|%s|%s|%d|%d|%d|%s", f.Version, f.Name, f.DID, f.KDF, f.KDFParams.N, f.KDFParams.R, f.KDFParams.P, f.Cipher)
}

var keyNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidKeyName reports whether name can name a key: lower-case letters,
// digits, '.', '_' and '-', at most 64, starting with a letter or digit.
func ValidKeyName(name string) error {
	if !keyNameRE.MatchString(name) {
		return fmt.Errorf("key name %q: want lower-case letters, digits, '.', '_' or '-' (at most 64, not starting with punctuation)", name)
	}
	return nil
}

// OpenKeystore returns the keystore in dir. The directory is created (0700)
// on the first write.
func OpenKeystore(dir string, params KDFParams) *Keystore {
	return &Keystore{dir: dir, params: params}
}

// Dir returns the keystore directory.
func (ks *Keystore) Dir() string { return ks.dir }

func (ks *Keystore) path(name string) string { return filepath.Join(ks.dir, name+".key") }

// Exists reports whether a key named name exists.
func (ks *Keystore) Exists(name string) bool {
	_, err := os.Stat(ks.path(name))
	return err == nil
}

// Create generates a key, stores it encrypted under passphrase, and returns
// it. It refuses to overwrite an existing key.
func (ks *Keystore) Create(name string, passphrase []byte) (*Key, error) {
	k, err := NewKey()
	if err != nil {
		return nil, err
	}
	if err := ks.Put(name, k, passphrase); err != nil {
		return nil, err
	}
	return k, nil
}

// Put stores k encrypted under passphrase. It refuses to overwrite.
func (ks *Keystore) Put(name string, k *Key, passphrase []byte) error {
	if err := ValidKeyName(name); err != nil {
		return err
	}
	if len(passphrase) == 0 {
		return fmt.Errorf("key %s: empty passphrase", name)
	}
	f := &keyFile{
		Version:   keyFileVersion,
		Name:      name,
		DID:       k.DID(),
		Created:   time.Now().UTC().Truncate(time.Second),
		KDF:       "scrypt",
		KDFParams: ks.params,
		Cipher:    "xchacha20-poly1305",
		Salt:      make([]byte, 32),
		Nonce:     make([]byte, chacha20poly1305.NonceSizeX),
	}
	if _, err := rand.Read(f.Salt); err != nil {
		return err
	}
	if _, err := rand.Read(f.Nonce); err != nil {
		return err
	}
	aead, err := f.aead(passphrase)
	if err != nil {
		return fmt.Errorf("key %s: %w", name, err)
	}
	f.Ciphertext = aead.Seal(nil, f.Nonce, k.Seed(), f.ad())
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(ks.dir, 0o700); err != nil {
		return fmt.Errorf("create keystore %s: %w", ks.dir, err)
	}
	// WriteNew: never overwrite, even when two processes race.
	path := ks.path(name)
	if err := atomicfile.WriteNew(path, append(data, '\n'), 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("key %s: %w (%s)", name, ErrKeyExists, path)
		}
		return fmt.Errorf("store key %s: %w", name, err)
	}
	return nil
}

func (f *keyFile) aead(passphrase []byte) (cipherAEAD, error) {
	p := f.KDFParams
	// Bound the parameters a file may ask for: a corrupted or hostile file
	// must not make us allocate gigabytes.
	if p.N < 2 || p.N > 1<<20 || p.N&(p.N-1) != 0 || p.R < 1 || p.R > 32 || p.P < 1 || p.P > 16 {
		return nil, fmt.Errorf("unsupported scrypt parameters n=%d r=%d p=%d", p.N, p.R, p.P)
	}
	dk, err := scrypt.Key(passphrase, f.Salt, p.N, p.R, p.P, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	return chacha20poly1305.NewX(dk)
}

type cipherAEAD interface {
	Seal(dst, nonce, plaintext, additionalData []byte) []byte
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
}

// read loads and checks the header of a key file.
func (ks *Keystore) read(name string) (*keyFile, error) {
	if err := ValidKeyName(name); err != nil {
		return nil, err
	}
	path := ks.path(name)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("key %s: %w (looked in %s)", name, ErrKeyNotFound, ks.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", name, err)
	}
	corrupt := func(reason string) (*keyFile, error) {
		return nil, &CorruptKeyError{Key: name, Path: path, Reason: reason}
	}
	var f keyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return corrupt(err.Error())
	}
	switch {
	case f.Version != keyFileVersion:
		return corrupt(fmt.Sprintf("unknown version %d", f.Version))
	case f.Name != name:
		return corrupt(fmt.Sprintf("file names key %q", f.Name))
	case !f.DID.Valid():
		return corrupt("bad did")
	case f.KDF != "scrypt" || f.Cipher != "xchacha20-poly1305":
		return corrupt(fmt.Sprintf("unsupported kdf %q or cipher %q", f.KDF, f.Cipher))
	case len(f.Salt) < 16 || len(f.Nonce) != chacha20poly1305.NonceSizeX:
		return corrupt("bad salt or nonce")
	case len(f.Ciphertext) != 32+chacha20poly1305.Overhead:
		return corrupt(fmt.Sprintf("ciphertext is %d bytes, want %d", len(f.Ciphertext), 32+chacha20poly1305.Overhead))
	}
	return &f, nil
}

// DID returns the DID of the named key without decrypting it.
func (ks *Keystore) DID(name string) (DID, error) {
	f, err := ks.read(name)
	if err != nil {
		return "", err
	}
	return f.DID, nil
}

// Load decrypts the named key. A wrong passphrase gives a *PassphraseError.
func (ks *Keystore) Load(name string, passphrase []byte) (*Key, error) {
	f, err := ks.read(name)
	if err != nil {
		return nil, err
	}
	aead, err := f.aead(passphrase)
	if err != nil {
		return nil, &CorruptKeyError{Key: name, Path: ks.path(name), Reason: err.Error()}
	}
	seed, err := aead.Open(nil, f.Nonce, f.Ciphertext, f.ad())
	if err != nil {
		// The AEAD cannot tell a wrong passphrase from a tampered file; a
		// tampered header is far less likely than a typo.
		return nil, &PassphraseError{Key: name}
	}
	k, err := KeyFromSeed(seed)
	if err != nil {
		return nil, &CorruptKeyError{Key: name, Path: ks.path(name), Reason: err.Error()}
	}
	if k.DID() != f.DID {
		return nil, &CorruptKeyError{Key: name, Path: ks.path(name), Reason: "stored did does not match the key"}
	}
	return k, nil
}

// KeyInfo describes a stored key.
type KeyInfo struct {
	Name    string    `json:"name"`
	DID     DID       `json:"did"`
	Created time.Time `json:"created"`
	Error   string    `json:"error,omitempty"` // set when the file is unreadable
}

// List returns every key in the keystore, sorted by name. An unreadable file
// is listed with its error rather than failing the whole listing.
func (ks *Keystore) List() ([]KeyInfo, error) {
	entries, err := os.ReadDir(ks.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	var out []KeyInfo
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".key")
		if !ok || e.IsDir() || ValidKeyName(name) != nil {
			continue
		}
		f, err := ks.read(name)
		if err != nil {
			out = append(out, KeyInfo{Name: name, Error: err.Error()})
			continue
		}
		out = append(out, KeyInfo{Name: name, DID: f.DID, Created: f.Created})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
