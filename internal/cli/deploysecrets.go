package cli

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/storage"
)

// deploySecrets reads the secrets of dms deploy --secret NAME=FILE (FILE
// "-" is stdin, once), checks each is a credentials file, and checks them
// against the secrets spec names: every one given, none extra. Errors name
// the secret and the file, never a value.
func (a *app) deploySecrets(flags []string, spec *ensemble.Spec) (map[string]string, error) {
	out := map[string]string{}
	stdin := false
	for _, f := range flags {
		name, file, ok := strings.Cut(f, "=")
		switch {
		case !ok || name == "" || file == "":
			return nil, usagef("--secret %q: want NAME=FILE (FILE - reads stdin)", clipArg(f))
		case !ensemble.IsName(name):
			return nil, usagef("--secret %s: %q is not a secret name (lower-case letters, digits and '-')", clipArg(f), clipArg(name))
		}
		if _, dup := out[name]; dup {
			return nil, usagef("--secret %s is given twice", name)
		}
		var data []byte
		var err error
		if file == "-" {
			if stdin {
				return nil, usagef("--secret %s=-: stdin is read once, for one secret", name)
			}
			stdin = true
			data, err = io.ReadAll(io.LimitReader(a.stdin, 1<<20))
		} else {
			data, err = os.ReadFile(file)
		}
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is said below
			}
			return nil, fmt.Errorf("secret %s: read %s: %w", name, file, err)
		}
		if _, err := storage.ParseCredentials(data); err != nil {
			return nil, fmt.Errorf("secret %s (%s): %w", name, file, err)
		}
		out[name] = string(data)
	}
	if err := spec.CheckSecrets(slices.Sorted(maps.Keys(out))); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// clipArg shortens an argument quoted in an error.
func clipArg(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
