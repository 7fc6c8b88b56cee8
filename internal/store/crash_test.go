package store

import (
	"bufio"
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
)

// The crash test re-executes the test binary as a writer child
// (crashChildEnv names the store and round), kills it with SIGKILL at a
// random moment, and checks that every write the child reported as
// committed survived, atomically across two kinds.

const crashChildEnv = "DMS_STORE_CRASH_CHILD"

type crashRec struct {
	Key  string `json:"key"`
	Seq  int    `json:"seq"`
	Pad  string `json:"pad"`
	Part string `json:"part"`
}

func crashKinds() (*Kind[crashRec], *Kind[crashRec]) {
	key := func(r crashRec) string { return r.Key }
	a := NewKind("crash-a", key, IndexOn("part", func(r crashRec) string { return r.Part }))
	b := NewKind("crash-b", key)
	return a, b
}

// TestMain turns the test binary into the crash child when asked.
func TestMain(m *testing.M) {
	if spec := os.Getenv(crashChildEnv); spec != "" {
		os.Exit(crashChild(spec))
	}
	os.Exit(m.Run())
}

// crashChild writes records in a loop, printing "ok KEY" after each Update
// returned nil, until it is killed (or a bound of writes).
func crashChild(spec string) int {
	path, round, _ := strings.Cut(spec, "|")
	db, err := Open(path, Options{Timeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	a, b := crashKinds()
	fmt.Println("ready")
	pad := strings.Repeat("x", 300)
	for i := range 100000 {
		key := fmt.Sprintf("r%s-%06d", round, i)
		err := db.Update(func(tx *Tx) error {
			r := crashRec{Key: key, Seq: i, Pad: pad, Part: "p" + strconv.Itoa(i%7)}
			if err := a.Put(tx, r); err != nil {
				return err
			}
			return b.Put(tx, r)
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
		fmt.Println("ok " + key)
	}
	return 0
}

func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the binary 20 times")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dms.db")
	const rounds = 20
	deadline := time.Now().Add(40 * time.Second)
	var acked []string
	for round := range rounds {
		if time.Now().After(deadline) {
			t.Fatalf("crash test exceeded its time bound after %d rounds", round)
		}
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
		// Wait for the child to open the store, then let it write for a
		// random while (0–60 ms) before the kill.
		if l := <-lines; l != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: child said %q before ready; stderr: %s", round, l, stderr.String())
		}
		killAt := time.After(time.Duration(rand.IntN(60_000)) * time.Microsecond)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				if k, ok := strings.CutPrefix(l, "ok "); ok {
					acked = append(acked, k)
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
		checkCrashStore(t, path, acked)
	}
	t.Logf("%d rounds, %d acknowledged writes, all present", rounds, len(acked))
}

// checkCrashStore opens the store and checks every acknowledged key is in
// both kinds and in the index, and that no record is in one kind only.
func checkCrashStore(t *testing.T, path string, acked []string) {
	t.Helper()
	db, err := Open(path, Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer db.Close()
	a, b := crashKinds()
	err = db.View(func(tx *Tx) error {
		as, err := a.List(tx, "")
		if err != nil {
			return err
		}
		bs, err := b.List(tx, "")
		if err != nil {
			return err
		}
		if len(as) != len(bs) {
			return fmt.Errorf("kind a has %d records, kind b %d: a transaction was torn", len(as), len(bs))
		}
		indexed := 0
		for p := range 7 {
			keys, err := a.FindKeys(tx, "part", "p"+strconv.Itoa(p))
			if err != nil {
				return err
			}
			indexed += len(keys)
		}
		if indexed != len(as) {
			return fmt.Errorf("index holds %d entries for %d records", indexed, len(as))
		}
		for _, k := range acked {
			if _, err := a.Get(tx, k); err != nil {
				return fmt.Errorf("acknowledged write lost: %w", err)
			}
			if _, err := b.Get(tx, k); err != nil {
				return fmt.Errorf("acknowledged write lost: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
