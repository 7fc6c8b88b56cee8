// Command workload is the test workload of the executors: a static program
// that runs the steps of package script (print, sleep, exit with a code,
// allocate memory, write a file, spawn processes). The executor tests build
// it for Linux (into a FROM-scratch Docker image and a VM initramfs) and
// for wasip1 (a WebAssembly module):
//
//	CGO_ENABLED=0 go build -o workload ./internal/executor/internal/workload
//	GOOS=wasip1 GOARCH=wasm go build -o workload.wasm ./internal/executor/internal/workload
//
//	workload print=hello sleep=1s eprint=bye exit=3
package main

import (
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/dmsnet/dms/internal/executor/internal/script"
)

// kept holds the memory alloc steps allocate, so it stays in use.
var kept [][]byte

func main() {
	steps, err := script.Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(2)
	}
	for _, s := range steps {
		if code, stop := run(s); stop {
			os.Exit(code)
		}
	}
}

// run runs one step; stop is true when the workload must exit with code.
func run(s script.Step) (code int, stop bool) {
	switch s.Op {
	case script.Print:
		fmt.Println(s.Text)
	case script.EPrint:
		fmt.Fprintln(os.Stderr, s.Text)
	case script.Sleep:
		time.Sleep(s.D)
	case script.Spin:
		fmt.Printf("spun %d\n", spin(s.D))
	case script.Tick:
		for i := 1; i <= s.N; i++ {
			if i > 1 {
				time.Sleep(s.D)
			}
			fmt.Printf("tick %d\n", i)
		}
	case script.Exit:
		return s.N, true
	case script.Alloc:
		for range s.N {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			kept = append(kept, b)
		}
		fmt.Printf("allocated %d MiB\n", s.N)
	case script.Write:
		if err := os.WriteFile(s.Path, []byte(s.Text), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "workload:", err)
			return 1, true
		}
	case script.Append:
		if err := script.AppendLine(s.Path, s.Text); err != nil {
			fmt.Fprintln(os.Stderr, "workload:", err)
			return 1, true
		}
	case script.Fill:
		if err := script.FillFile(s.Path, s.N); err != nil {
			fmt.Fprintln(os.Stderr, "workload: fill:", err)
			return 1, true
		}
		fmt.Printf("filled %d MiB\n", s.N)
	case script.Cat:
		b, err := os.ReadFile(s.Path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "workload:", err)
			return 1, true
		}
		fmt.Print(string(b))
	case script.Env:
		fmt.Printf("%s=%s\n", s.Text, os.Getenv(s.Text))
	case script.Pwd:
		wd, err := os.Getwd()
		if err != nil {
			fmt.Fprintln(os.Stderr, "workload:", err)
			return 1, true
		}
		fmt.Println(wd)
	case script.Spawn:
		self, err := os.Executable()
		if err != nil {
			self = os.Args[0]
		}
		started := 0
		for range s.N {
			c := exec.Command(self, "sleep=1h")
			c.Env = append(os.Environ(), "GOMAXPROCS=1")
			if err = c.Start(); err != nil {
				break
			}
			started++
		}
		fmt.Printf("spawned %d\n", started)
		if err != nil {
			fmt.Fprintln(os.Stderr, "workload: spawn:", err)
		}
	}
	return 0, false
}

// spin keeps the CPU busy for d of wall time and returns the rounds of
// work done (a round is a million additions, the clock read in between).
func spin(d time.Duration) int {
	end := time.Now().Add(d)
	rounds, x := 0, uint64(1)
	for time.Now().Before(end) {
		for i := range 1_000_000 {
			x = x*6364136223846793005 + uint64(i)
		}
		rounds++
	}
	sink = x
	return rounds
}

// sink keeps the work of spin from being optimized away.
var sink uint64
