package ledger

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/contract/ledger/ledgertest"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/store"
)

// The crash test re-executes the test binary as a settling child
// (crashChildEnv names the store and round), kills it with SIGKILL at a
// random moment, and checks on the reopened store that every settlement
// the child reported survived and none was torn: each contract paid one
// of its notes' amounts, at least the largest reported, and the accounts
// balance.

const crashChildEnv = "DMS_LEDGER_CRASH_CHILD"

// TestMain turns the test binary into the crash child when asked.
func TestMain(m *testing.M) {
	if spec := os.Getenv(crashChildEnv); spec != "" {
		os.Exit(crashChild(spec))
	}
	os.Exit(m.Run())
}

// childTB stands in for testing.TB in the child: a fixture failure ends
// it with status 5.
type childTB struct{}

func (childTB) Helper() {}
func (childTB) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, args...)
	os.Exit(5)
}
func (childTB) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(5)
}

const crashProviders = 3

// crashChain is round r's contract and its countersigned notes, the same
// in every process: the requester is shared by all rounds, the provider
// one of crashProviders.
func crashChain(t ledgertest.TB, r int) (*contract.Contract, []*contract.SignedNote) {
	req := ledgertest.Key(t, "crash requester")
	prov := ledgertest.Key(t, fmt.Sprintf("crash provider %d", r%crashProviders))
	c := ledgertest.Contract(t, req, prov, fmt.Sprintf("crash-%d", r), 300_000)
	rng := rand.New(rand.NewPCG(uint64(r), 7))
	cpu := make([]uint64, 30)
	for i := range cpu {
		cpu[i] = rng.Uint64N(300)
	}
	notes := ledgertest.Notes(t, c, prov, ledgertest.Usages(cpu), true)
	for i, n := range notes {
		notes[i] = ledgertest.Countersigned(t, n, req)
	}
	return c, notes
}

// crashChild opens round's contract and settles random notes of it and
// of the earlier rounds' contracts in a loop, printing "ok ROUND AMOUNT"
// after each Settle returned, and closing a contract now and then, until
// it is killed (or a bound of settlements).
func crashChild(spec string) int {
	path, roundS, _ := strings.Cut(spec, "|")
	round, err := strconv.Atoi(roundS)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	db, err := store.Open(path, store.Options{Timeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	l, err := Open(db)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	ctx := context.Background()
	chains := make([][]*contract.SignedNote, round+1)
	ids := make([]string, round+1)
	for r := range chains {
		c, notes := crashChain(childTB{}, r)
		ids[r], chains[r] = c.ID, notes
		if r == round {
			if err := l.Open(ctx, c); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 4
			}
		}
	}
	fmt.Println("ready")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(round)))
	for range 100000 {
		r := rng.IntN(round + 1)
		if rng.IntN(40) == 0 {
			if err := l.Close(ctx, ids[r]); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 4
			}
			continue
		}
		n := chains[r][rng.IntN(len(chains[r]))]
		if _, err := l.Settle(ctx, n); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
		fmt.Printf("ok %d %d\n", r, int64(n.Note().Amount))
	}
	return 0
}

func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the binary 12 times")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dms.db")
	const rounds = 12
	deadline := time.Now().Add(40 * time.Second)
	acked := make([]match.Money, rounds) // per round, the largest amount a Settle returned for
	var settles int
	done := 0
	for round := range rounds {
		// A slow machine runs fewer rounds (at least two), not a failure.
		if round >= 2 && time.Now().After(deadline) {
			t.Logf("time budget spent after %d rounds", round)
			break
		}
		done = round + 1
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path+"|"+strconv.Itoa(round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Wait for the child to open its contract, then let it settle for
		// a random while (0–150 ms) before the kill.
		if l := <-lines; l != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: child said %q before ready; stderr: %s", round, l, stderr.String())
		}
		killAt := time.After(time.Duration(rand.IntN(150_000)) * time.Microsecond)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				var r int
				var a int64
				if _, err := fmt.Sscanf(l, "ok %d %d", &r, &a); err == nil && r >= 0 && r <= round {
					acked[r] = max(acked[r], match.Money(a))
					settles++
				}
			case <-killAt:
				cmd.Process.Signal(syscall.SIGKILL)
				killAt = nil
			}
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v, want SIGKILL; stderr: %s", round, err, stderr.String())
		}
		checkCrashLedger(t, path, round, acked, false)
	}
	// Settle every note of every round: each contract ends paying its
	// final amount exactly, whatever the killed children did.
	checkCrashLedger(t, path, done-1, acked, true)
	t.Logf("%d rounds, %d acknowledged settlements, all present", done, settles)
}

// checkCrashLedger reopens the ledger and checks the contracts of rounds
// 0..last: each paid the amount of one of its notes, at least the
// largest acknowledged; the requester paid what the contracts paid; the
// ledger audits clean. With all, it first settles every note.
func checkCrashLedger(t *testing.T, path string, last int, acked []match.Money, all bool) {
	t.Helper()
	db, err := store.Open(path, store.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer db.Close()
	l, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var total match.Money
	received := map[identity.DID]match.Money{}
	var req identity.DID
	for r := 0; r <= last; r++ {
		c, notes := crashChain(t, r)
		req = c.Terms().Requester
		final := notes[len(notes)-1].Note().Amount
		if all {
			if err := l.Open(ctx, c); err != nil {
				t.Fatal(err)
			}
			for _, n := range notes {
				if _, err := l.Settle(ctx, n); err != nil {
					t.Fatalf("round %d: settle note %d: %v", r, n.Note().Seq, err)
				}
			}
		}
		s, err := l.Contract(ctx, c.ID)
		if err != nil {
			t.Fatalf("round %d: the contract the child opened is gone: %v", r, err)
		}
		if s.Paid < acked[r] {
			t.Fatalf("round %d: contract paid %s, but a Settle of %s returned: a committed payment was lost", r, s.Paid, acked[r])
		}
		if all && s.Paid != final {
			t.Fatalf("round %d: after every note, contract paid %s, want the final amount %s", r, s.Paid, final)
		}
		ok := s.Paid == 0
		for _, n := range notes {
			ok = ok || n.Note().Amount == s.Paid
		}
		if !ok {
			t.Fatalf("round %d: contract paid %s, the amount of none of its notes", r, s.Paid)
		}
		total += s.Paid
		received[c.Terms().Provider] += s.Paid
	}
	if b := balance(t, l, req); b.Paid != total {
		t.Fatalf("requester paid %s, its contracts %s", b.Paid, total)
	}
	for did, want := range received {
		if b := balance(t, l, did); b.Received != want {
			t.Fatalf("provider %s received %s, its contracts paid %s", did.Short(), b.Received, want)
		}
	}
	audit(t, l)
}
