package wasm_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/match"
)

// Hand-written modules, in hex, with one function type () -> ().
const (
	header = "0061736d01000000" + "010401600000"
	// importModule imports env.f and exports it as _start.
	importModule = header + "02090103656e7601660000" + "070a01065f73746172740000"
	// trapModule's _start executes unreachable.
	trapModule = header + "03020100" + "070a01065f73746172740000" + "0a05010300000b"
	// exitModule's _start returns at once.
	exitModule = header + "03020100" + "070a01065f73746172740000" + "0a040102000b"
	// loopModule's _start loops forever: loop br 0 end.
	loopModule = header + "03020100" + "070a01065f73746172740000" + "0a090107000340" + "0c000b0b"
)

func mustModule(t *testing.T, h string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(h, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gpu() match.GPU { return match.GPU{Vendor: "nvidia"} }
