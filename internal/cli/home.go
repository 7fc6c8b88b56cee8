package cli

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/identity"
)

// The layout of a dms home directory.
const (
	configFile   = "config.yaml"
	keysDir      = "keys"
	apiTokenFile = api.TokenFile
	apiAddrFile  = api.AddrFile
	dataDir      = "data"
)

func (a *app) path(elem ...string) string {
	return filepath.Join(append([]string{a.home}, elem...)...)
}

// keystore returns the home's keystore.
func (a *app) keystore() *identity.Keystore {
	return identity.OpenKeystore(a.path(keysDir), identity.DefaultKDF)
}

// requireHome fails with a helpful line when the home was never initialised.
func (a *app) requireHome() error {
	if _, err := os.Stat(a.path(keysDir)); err != nil {
		return fmt.Errorf("no dms home at %s: run `dms init` first (or pass --home)", a.home)
	}
	return nil
}

// passphrase returns the passphrase for key: from $DMS_PASSPHRASE, else the
// file named by $DMS_PASSPHRASE_FILE, else a prompt on the terminal. With
// confirm it asks twice (for new keys).
func (a *app) passphrase(key string, confirm bool) ([]byte, error) {
	p, _, err := a.passphraseFrom(key, confirm)
	return p, err
}

// passphraseFrom is passphrase that also says where the passphrase came
// from, for the error when it does not open the key: "$DMS_PASSPHRASE",
// "$DMS_PASSPHRASE_FILE=PATH" or "the prompt". The first source set wins:
// the variable, then the file, then the prompt.
func (a *app) passphraseFrom(key string, confirm bool) ([]byte, string, error) {
	if p, ok := os.LookupEnv("DMS_PASSPHRASE"); ok {
		if p == "" {
			return nil, "", errors.New("DMS_PASSPHRASE is set but empty")
		}
		return []byte(p), "$DMS_PASSPHRASE", nil
	}
	if f := os.Getenv("DMS_PASSPHRASE_FILE"); f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, "", fmt.Errorf("read DMS_PASSPHRASE_FILE: %w", err)
		}
		p := strings.TrimRight(string(data), "\r\n")
		if p == "" {
			return nil, "", fmt.Errorf("DMS_PASSPHRASE_FILE %s is empty", f)
		}
		return []byte(p), "$DMS_PASSPHRASE_FILE=" + f, nil
	}
	in, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return nil, "", fmt.Errorf("passphrase needed for key %s: set DMS_PASSPHRASE or DMS_PASSPHRASE_FILE, or run on a terminal", key)
	}
	read := func(prompt string) ([]byte, error) {
		fmt.Fprint(a.stderr, prompt)
		p, err := a.readPassword(int(in.Fd()))
		fmt.Fprintln(a.stderr)
		return p, err
	}
	p, err := read(fmt.Sprintf("Passphrase for key %s: ", key))
	if err != nil {
		return nil, "", fmt.Errorf("read passphrase: %w", err)
	}
	if len(p) == 0 {
		return nil, "", errors.New("empty passphrase")
	}
	if confirm {
		again, err := read("Repeat passphrase: ")
		if err != nil {
			return nil, "", fmt.Errorf("read passphrase: %w", err)
		}
		if string(again) != string(p) {
			return nil, "", errors.New("passphrases do not match")
		}
	}
	return p, "the prompt", nil
}

// readPassword reads a passphrase from the terminal fd without echo. A
// signal (Ctrl-C) cancels the read and gives the terminal its echo back
// rather than leaving the prompt waiting.
func (a *app) readPassword(fd int) ([]byte, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return nil, err
	}
	type result struct {
		p   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		p, err := term.ReadPassword(fd)
		ch <- result{p, err}
	}()
	select {
	case r := <-ch:
		return r.p, r.err
	case <-a.ctx.Done():
		term.Restore(fd, state) // the read goroutine stays blocked; the process is ending
		return nil, a.ctx.Err()
	}
}

// loadKey decrypts a key of this home. When the passphrase does not open
// it, the error names where the passphrase came from.
func (a *app) loadKey(name string) (*identity.Key, error) {
	ks := a.keystore()
	if _, err := ks.DID(name); err != nil {
		return nil, err
	}
	pass, source, err := a.passphraseFrom(name, false)
	if err != nil {
		return nil, err
	}
	k, err := ks.Load(name, pass)
	var pe *identity.PassphraseError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("%w (read from %s)", err, source)
	}
	return k, err
}

// readLine reads one line from stdin (for confirmations).
func (a *app) readLine() (string, error) {
	s, err := bufio.NewReader(a.stdin).ReadString('\n')
	return strings.TrimSpace(s), err
}
