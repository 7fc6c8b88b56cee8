// Package script is the tiny step language of the test workload: the same
// argument list drives the real workload program (built for Linux into a
// Docker image and a VM initramfs, and for wasip1 into a module) and the
// in-process fake executor, so one Spec means the same on every backend.
//
// A workload's arguments after the program name are steps, run in order:
//
//	print=TEXT        write TEXT and a newline to stdout
//	eprint=TEXT       write TEXT and a newline to stderr
//	sleep=DURATION    sleep (Go duration: 200ms, 1m)
//	spin=DURATION     keep a core busy for DURATION of wall time, then
//	                  print "spun N" (N rounds of work done)
//	tick=NxDURATION   print "tick 1" … "tick N", one every DURATION
//	exit=CODE         exit with CODE (without it the workload exits 0)
//	alloc=MIB         allocate and touch MIB mebibytes, and keep them
//	write=PATH:TEXT   write TEXT to the file PATH
//	append=PATH:TEXT  append TEXT and a newline to the file PATH (created)
//	fill=PATH:MIB     write MIB mebibytes to the file PATH; on an error
//	                  (ENOSPC) print "workload: fill: ERROR" to stderr and exit 1
//	cat=PATH          print the contents of PATH
//	env=NAME          print NAME=value
//	pwd               print the working directory
//	spawn=N           start N child processes that sleep, print how many
//	                  started, stop at the first failure
package script

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Op is the kind of a step.
type Op string

// The step kinds.
const (
	Print  Op = "print"
	EPrint Op = "eprint"
	Sleep  Op = "sleep"
	Spin   Op = "spin"
	Tick   Op = "tick"
	Exit   Op = "exit"
	Alloc  Op = "alloc"
	Write  Op = "write"
	Append Op = "append"
	Fill   Op = "fill"
	Cat    Op = "cat"
	Env    Op = "env"
	Pwd    Op = "pwd"
	Spawn  Op = "spawn"
)

// Step is one parsed step.
type Step struct {
	Op   Op
	Text string        // print, eprint, write and append (the content), env (the name)
	Path string        // write, append, fill, cat
	N    int           // tick (count), exit (code), alloc and fill (MiB), spawn (count)
	D    time.Duration // sleep, spin, tick (interval)
}

// Parse parses the steps of a workload's arguments (without the program
// name).
func Parse(args []string) ([]Step, error) {
	steps := make([]Step, 0, len(args))
	for _, a := range args {
		op, arg, hasArg := strings.Cut(a, "=")
		s := Step{Op: Op(op)}
		var err error
		switch s.Op {
		case Print, EPrint:
			s.Text = arg
		case Env:
			s.Text = arg
			if arg == "" {
				err = fmt.Errorf("needs a variable name")
			}
		case Sleep, Spin:
			s.D, err = time.ParseDuration(arg)
		case Tick:
			n, d, ok := strings.Cut(arg, "x")
			if !ok {
				err = fmt.Errorf("want NxDURATION")
				break
			}
			if s.N, err = strconv.Atoi(n); err == nil {
				s.D, err = time.ParseDuration(d)
			}
		case Exit, Alloc, Spawn:
			s.N, err = strconv.Atoi(arg)
		case Write, Append:
			var ok bool
			if s.Path, s.Text, ok = strings.Cut(arg, ":"); !ok || s.Path == "" {
				err = fmt.Errorf("want PATH:TEXT")
			}
		case Fill:
			path, n, ok := strings.Cut(arg, ":")
			if !ok || path == "" {
				err = fmt.Errorf("want PATH:MIB")
				break
			}
			s.Path = path
			s.N, err = strconv.Atoi(n)
		case Cat:
			s.Path = arg
			if arg == "" {
				err = fmt.Errorf("needs a path")
			}
		case Pwd:
			if hasArg {
				err = fmt.Errorf("takes no argument")
			}
		default:
			err = fmt.Errorf("unknown step")
		}
		if err != nil {
			return nil, fmt.Errorf("step %q: %w", a, err)
		}
		steps = append(steps, s)
	}
	return steps, nil
}

// AppendLine appends text and a newline to the file path, creating it.
func AppendLine(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// FillFile writes mib mebibytes of zeros to the file path and syncs it, so
// that a full filesystem answers ENOSPC here rather than later.
func FillFile(path string, mib int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for range mib {
		if _, err = f.Write(buf); err != nil {
			break
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
